"""Sphinx configuration for plone.app.asyncjobs."""
project = "plone.app.asyncjobs"
author = "The plone.app.asyncjobs developers"
copyright = "2026, " + author
extensions = ["sphinx.ext.autodoc", "sphinx.ext.doctest"]
master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
