from pathlib import Path

from setuptools import find_namespace_packages
from setuptools import setup


setup(
    name="plone.app.asyncjobs",
    version="1.0.0a1.dev0",
    description=(
        "Durable background jobs for Plone 6 and any ZODB application: "
        "the Python 3 successor of zc.async and plone.app.async"
    ),
    long_description="\n\n".join(
        Path(name).read_text() for name in ("README.rst", "CHANGES.rst")
    ),
    long_description_content_type="text/x-rst",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Plone",
        "Framework :: Plone :: 6.2",
        "Framework :: Plone :: Addon",
        "Framework :: ZODB",
        "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
    keywords="plone zodb zeo async jobs queue worker",
    license="GPL version 2",
    package_dir={"": "src"},
    packages=find_namespace_packages("src", include=["plone.*"]),
    include_package_data=True,
    package_data={"plone.app.asyncjobs": [
        "*.zcml", "*/*.zcml", "profiles/*/*.xml",
        "browser/templates/*.pt", "browser/static/*", "deployment/*.ini",
    ]},
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        # The engine: jobs and queues live in ZODB, workers talk ZEO, and
        # each worker runs a private Twisted reactor for its heartbeat.
        "BTrees",
        "persistent",
        "transaction",
        "ZODB>=6",
        "ZEO>=6",
        "Twisted>=24",
        # Cron expressions of recurring jobs (engine/schedules.py): a
        # well-kept parser rather than one of our own.
        "croniter",
        # Prometheus text exposition of the engine's metrics (engine/metrics.py,
        # served by workers): the reference client, pure Python.
        "prometheus_client",
        "zope.component",
        "zope.event",
        "zope.interface",
    ],
    extras_require={
        "plone": [
            "Products.CMFPlone>=6.2",
            "Products.GenericSetup",
            "plone.api",
            "plone.app.registry",
            "plone.app.uuid",
            "plone.base",
            "plone.browserlayer",
            "plone.restapi",
            "plone.uuid",
            "zope.globalrequest",
            "zope.processlifetime",
            "zope.traversing",
        ],
        "relstorage": [
            "RelStorage[postgresql]>=4",
        ],
        "test": [
            "plone.app.asyncjobs[plone,relstorage]",
            "plone.app.testing",
            "plone.testing",
            # Drives Debian's /usr/bin/chromium (`make browsers`) in the
            # browser tests; it never downloads a browser of its own.
            "playwright",
            "pytest",
            "pytest-plone",
            "Sphinx",
            "zope.pytestlayer",
            "zope.testrunner",
        ],
    },
    entry_points={
        "z3c.autoinclude.plugin": ["target = plone"],
        "console_scripts": [
            "plone-asyncjobs-remove-zc-async = "
            "plone.app.asyncjobs.migration.script:console_main",
        ],
    },
)
