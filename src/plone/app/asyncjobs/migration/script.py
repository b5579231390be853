"""Survey and remove zc.async's data from the command line.

With the Zope instance's configuration (the instance may keep running on
ZEO or RelStorage)::

    bin/instance run /path/to/plone/app/asyncjobs/migration/script.py --dry-run
    bin/instance run /path/to/plone/app/asyncjobs/migration/script.py

or, where the package's console script is installed::

    plone-asyncjobs-remove-zc-async --zope-conf parts/instance/etc/zope.conf --dry-run

The first run prints what is there (records by class, jobs by status, the
jobs that never completed by callable and site) and, without
``--dry-run``, removes the root key ``'zc.async'`` from each database that
has it, committing after each.  Pack the databases afterwards.
"""
import argparse
import sys

from plone.app.asyncjobs.migration.leftovers import remove
from plone.app.asyncjobs.migration.leftovers import survey


def main(argv=None, app=None, out=None):
    """Run the command; ``app`` is the Zope application when a Zope script
    runner already opened it.  Returns the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="plone-asyncjobs-remove-zc-async",
        description="Report, then remove, the data zc.async and plone.app.async "
                    "left in a Zope database.")
    parser.add_argument("--dry-run", action="store_true",
                        help="report only; change nothing")
    parser.add_argument("--zope-conf", "-C", metavar="PATH",
                        help="zope.conf of an instance (not needed under bin/instance run)")
    options = parser.parse_args(argv)
    if app is None:
        if not options.zope_conf:
            parser.error("give --zope-conf, or run this file with bin/instance run")
        app = _open_zope(options.zope_conf)
    connection = app._p_jar
    manager = connection.transaction_manager
    found = survey(connection)
    print("\n".join(found.report()), file=out)
    if not found.found:
        return 0
    if options.dry_run:
        manager.abort()
        print("Dry run: nothing was removed.", file=out)
        return 0
    removed = remove(connection, commit=manager.commit)
    print(f"Removed the root key 'zc.async' of database(s) "
          f"{', '.join(map(repr, removed))}; pack them to delete the "
          f"{found.records} record(s).", file=out)
    return 0


def console_main():
    """The ``plone-asyncjobs-remove-zc-async`` console script."""
    sys.exit(main(sys.argv[1:]))


def _open_zope(zope_conf):
    # Importing zconsole marks this process as a console script, so that a
    # worker role in its ZCML starts no dispatcher (see worker.runtime).
    import Zope2
    import Zope2.utilities.zconsole  # noqa: F401
    from Zope2.Startup.run import make_wsgi_app

    make_wsgi_app({}, zope_conf)
    return Zope2.app()


def _script_arguments(argv):
    """The arguments after this file's name (Zope's script runners pass
    their own first), else all but the program name."""
    for index, argument in enumerate(argv):
        if argument.endswith(("migration/script.py", "migration\\script.py")):
            return argv[index + 1:]
    return argv[1:]


if __name__ == "__main__":
    sys.exit(main(_script_arguments(sys.argv), app=globals().get("app")))
