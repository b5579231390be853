"""Migrating a site from plone.app.async: zc.async's data, reported and removed.

The databases are built for real: their records name zc.async's classes
(:mod:`.zc_async_data`), which cannot be imported when the migration runs.
"""
import collections
import io
import pickle
import types

import pytest
import transaction
import ZODB
from ZODB.broken import Broken
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.tests.MinPO import MinPO
from ZODB.utils import load_current

from plone.app.asyncjobs.migration import leftovers
from plone.app.asyncjobs.migration import script
from plone.app.asyncjobs.tests import zc_async_data


def open_databases(directory, multi):
    """The main database, with ``async`` beside it when ``multi``."""
    databases = {}
    main = ZODB.DB(FileStorage(str(directory / "Data.fs")), databases=databases,
                   database_name="main")
    if multi:
        ZODB.DB(FileStorage(str(directory / "Async.fs")), databases=databases,
                database_name="async")
    return main


def close(main):
    for db in list(main.databases.values()):
        db.close()


def build_old_site(directory, multi):
    """Write the data; return what never completed, and a job's oid."""
    main = open_databases(directory, multi)
    manager = transaction.TransactionManager()
    connection = main.open(transaction_manager=manager)
    root = connection.root()
    queues_connection = connection.get_connection("async" if multi else "main")
    with zc_async_data.zc_async_classes():
        root["Application"] = content = MinPO("a document")
        connection.add(content)  # in the main database, where the root is
        expected = zc_async_data.build(root, queues_connection, content)
        manager.commit()
        queue = queues_connection.root()["zc.async"]._data[""]
        job_oid = queue._queue[0]._p_oid
    connection.close()
    close(main)
    return expected, job_oid


@pytest.fixture(params=[False, True], ids=["single_db", "multi_db"])
def old_site(request, tmp_path):
    """Databases as plone.app.async left them, opened without zc.async."""
    multi = request.param
    expected, job_oid = build_old_site(tmp_path, multi)
    main = open_databases(tmp_path, multi)
    manager = transaction.TransactionManager()
    connection = main.open(transaction_manager=manager)
    yield types.SimpleNamespace(
        main=main, connection=connection, expected=expected, job_oid=job_oid,
        queues_database="async" if multi else "main", multi=multi,
        app=types.SimpleNamespace(_p_jar=connection))
    manager.abort()
    connection.close()
    close(main)


def test_the_old_data_loads_broken(old_site):
    queues = old_site.connection.root()["zc.async"]
    assert isinstance(queues, Broken)


def test_the_survey_reports_what_never_completed(old_site):
    found = leftovers.survey(old_site.connection)
    databases = ["async", "main"] if old_site.multi else ["main"]
    assert found.databases == databases
    assert dict(found.unfinished) == old_site.expected
    assert dict(found.jobs) == {"pending": 4, "assigned": 1, "active": 1, "completed": 1}
    assert found.classes["zc.async.job.Job"] == 8
    assert found.classes["zc.async.queue.Queue"] == 1
    assert found.classes["zc.async.agent.Agent"] == 1
    assert found.outside == 1  # the document a job was to reindex
    assert not found.missing_databases


def test_dry_run_reports_and_changes_nothing(old_site):
    out = io.StringIO()
    assert script.main(["--dry-run"], app=old_site.app, out=out) == 0
    text = out.getvalue()
    assert "Jobs that never completed" in text
    assert "       2  pending   collective.pdfs.jobs.make_pdf  in /plone" in text
    assert "       1  assigned  collective.pdfs.jobs.make_pdf  in /plone" in text
    assert "zc.async.job.Job" in text
    assert "Dry run: nothing was removed." in text
    check = old_site.main.open()
    assert "zc.async" in check.root()
    check.close()


def test_removal_leaves_a_clean_database(old_site):
    out = io.StringIO()
    assert script.main([], app=old_site.app, out=out) == 0
    assert "Removed the root key 'zc.async'" in out.getvalue()

    check = old_site.main.open()
    for name in old_site.main.databases:
        assert "zc.async" not in check.get_connection(name).root()
    assert check.root()["Application"].value == "a document"
    check.close()
    assert not leftovers.survey(old_site.connection).found

    queues_db = old_site.main.databases[old_site.queues_database]
    queues_db.pack()
    with pytest.raises(POSKeyError):
        queues_db.storage.load(old_site.job_oid)


def test_a_database_without_zc_async_data(tmp_path):
    main = open_databases(tmp_path, multi=False)
    connection = main.open()
    out = io.StringIO()
    assert script.main([], app=types.SimpleNamespace(_p_jar=connection), out=out) == 0
    assert out.getvalue() == "No zc.async data (root key 'zc.async') in this database.\n"
    connection.close()
    close(main)


def test_the_script_needs_a_zope_conf_without_an_app():
    with pytest.raises(SystemExit):
        script.main([])


def test_script_arguments_follow_the_script_name():
    argv = ["zconsole", "run", "zope.conf", "/x/plone/app/asyncjobs/migration/script.py",
            "--dry-run"]
    assert script._script_arguments(argv) == ["--dry-run"]
    assert script._script_arguments(["prog", "--dry-run"]) == ["--dry-run"]


def test_the_upgrade_step_to_1004_reports_and_removes_the_data(portal, caplog):
    from plone import api
    from Products.GenericSetup.upgrade import listUpgradeSteps

    connection = portal._p_jar
    with zc_async_data.zc_async_classes():
        expected = zc_async_data.build(connection.root(), connection, portal)
        transaction.commit()
    setup_tool = api.portal.get_tool("portal_setup")
    [step] = [s for s in listUpgradeSteps(setup_tool, "plone.app.asyncjobs:default", "1003")
              if not isinstance(s, list) and s["source"] == ("1003",)]
    assert step["dest"] == ("1004",)

    with caplog.at_level("INFO", logger="plone.app.asyncjobs"):
        step["step"].doStep(setup_tool)
    transaction.commit()

    assert "zc.async" not in connection.root()
    logged = caplog.text
    assert "2  pending   collective.pdfs.jobs.make_pdf  in /plone" in logged
    assert "1  pending   collective.pdfs.jobs.send_mail  in /other" in logged
    assert len(expected) == 5


def test_the_script_runs_under_a_zope_script_runner(old_site, monkeypatch, capsys):
    """As ``bin/instance run script.py --dry-run`` runs it: executed as
    ``__main__`` with ``app`` among its globals."""
    path = script.__file__
    monkeypatch.setattr("sys.argv", ["zconsole", "run", "zope.conf", path, "--dry-run"])
    with open(path) as source, pytest.raises(SystemExit) as exit:
        exec(compile(source.read(), path, "exec"), {"__name__": "__main__", "app": old_site.app})
    assert exit.value.code == 0
    assert "Dry run: nothing was removed." in capsys.readouterr().out


def test_records_written_by_python_2_are_read():
    """Protocol 1, as ZODB wrote on Python 2: classes by name, byte strings
    (an oid, a site path) as str, a reference to another record with its
    class."""
    from plone.app.asyncjobs.migration import records

    parent_oid = b"\x00\x00\x00\x00\x00\x00\x00\x07"
    data = (
        b"czc.async.job\nJob\nq\x00."
        b"}q\x01(U\x0a_status_idq\x02K\x00"
        b"U\x06parentq\x03(U\x08" + parent_oid + b"q\x04czc.async.queue\nQueue\nq\x05tQ"
        b"U\x0e_callable_rootq\x06cplone.app.async.service\n_executeAsUser\nq\x07"
        b"U\x0bportal_pathq\x08(U\x00U\x05Plonetq\x09u."
    )
    record = records.parse(b"\x00" * 7 + b"\x01", data)
    assert record.class_name == "zc.async.job.Job"
    state = record.state
    assert state["_status_id"] == 0
    assert state["parent"] == records.Reference(None, parent_oid, "zc.async.queue.Queue")
    assert records.dotted_name(state["_callable_root"]) == leftovers.EXECUTE_AS_USER
    assert leftovers._status(state, "main", {}) == "pending"
    assert leftovers._describe(state, "main", None) == (leftovers.EXECUTE_AS_USER, "/Plone")


class Legacy(dict):
    """A class of an add-on gone since: its records read it as a stub."""


class LegacyList(list):
    pass


class _Ref:
    def __init__(self, oid):
        self.oid = oid


class _ReferencePickler(pickle.Pickler):
    """Pickles ``_Ref`` instances as references to records, as ZODB does."""

    def persistent_id(self, obj):
        return obj.oid if isinstance(obj, _Ref) else None

    @classmethod
    def dumps(cls, value):
        out = io.BytesIO()
        cls(out, protocol=3).dump(value)
        return out.getvalue()


def test_instances_of_builtin_subclasses_are_read_with_their_references():
    """A job's arguments or result may be an ``OrderedDict``, a
    ``defaultdict`` or any subclass of ``dict`` or ``list``: reading them
    failed, which stopped the survey, the script and the upgrade step."""
    from plone.app.asyncjobs.migration import records

    other = b"\x00" * 7 + b"\x09"
    for protocol in (1, 2, 3):
        pickles = [
            pickle.dumps({"args": collections.OrderedDict(a=1)}, protocol),
            pickle.dumps({"args": collections.defaultdict(list, b=[2])}, protocol),
            pickle.dumps({"result": Legacy(c=3)}, protocol),
            pickle.dumps({"args": LegacyList([4])}, protocol),
        ]
        for state in pickles:
            record = records.parse(b"\x00" * 8, b"czc.async.job\nJob\nq\x00." + state)
            assert record.class_name == "zc.async.job.Job"
    holder = LegacyList([_Ref(other)])
    state = _ReferencePickler.dumps({"args": holder})
    record = records.parse(b"\x00" * 8, b"czc.async.job\nJob\nq\x00." + state)
    assert list(records.references(record.state)) == [records.Reference(None, other, None)]


def test_a_record_that_is_gone_is_skipped_by_the_survey_and_the_removal(old_site):
    """A dangling reference (a record packed away) stopped the migration."""
    storage = old_site.main.databases[old_site.queues_database].storage
    transaction_data = TransactionMetaData()
    storage.tpc_begin(transaction_data)
    storage.deleteObject(old_site.job_oid, load_current(storage, old_site.job_oid)[1],
                         transaction_data)
    storage.tpc_vote(transaction_data)
    storage.tpc_finish(transaction_data)
    out = io.StringIO()
    assert script.main([], app=old_site.app, out=out) == 0
    assert "1 referred record(s) are gone or cannot be read" in out.getvalue()
    assert "Removed the root key 'zc.async'" in out.getvalue()


def test_the_survey_keeps_no_job_result_until_it_ends():
    """It kept every job record's whole state: memory grew with the results."""
    facts = leftovers._job_facts({"_status_id": 3, "_result": "x" * 60_000,
                                  "args": tuple(range(8)), "portal_path": ("", "plone")})
    assert facts == {"_status_id": 3, "args": (0, 1, 2, 3, 4), "portal_path": ("", "plone")}
