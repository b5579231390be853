"""GenericSetup helpers: the handlers of the profiles
``plone.app.asyncjobs:default`` and ``:uninstall`` (whose files are in
``profiles/`` at the package root) and the upgrade steps."""
