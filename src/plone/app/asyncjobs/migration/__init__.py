"""Moving a site from plone.app.async: finding, reporting and removing
what zc.async left in its database.

* :mod:`.records` - reading records without importing their classes;
* :mod:`.leftovers` - the survey and the removal;
* :mod:`.script` - the command line (``bin/instance run``, console script);
* the upgrade step of the profile to version 1004 runs the same.

See ``docs/migration.rst``.
"""
