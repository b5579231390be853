"""The ``asyncdb`` command, asked over real TCP connections of a monitor
server, about the database of a real dispatcher (see `.engine_setup`)."""

import json
import os
import socket
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import ZODB
from twisted.internet.threads import blockingCallFromThread

from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.monitor import databases
from plone.app.asyncjobs.monitor.async_command import async_
from plone.app.asyncjobs.monitor.asyncdb_command import AsyncDBCommand
from plone.app.asyncjobs.monitor.asyncdb_command import asyncdb
from plone.app.asyncjobs.monitor.asyncdb_command import reading
from plone.app.asyncjobs.monitor.interfaces import IMonitorPlugin
from plone.app.asyncjobs.monitor.tests.client import ask
from plone.app.asyncjobs.monitor.tests.client import connect
from plone.app.asyncjobs.monitor.tests.client import read_to_end
from plone.app.asyncjobs.monitor.tests.engine_setup import ALIVE
from plone.app.asyncjobs.monitor.tests.engine_setup import DEAD
from plone.app.asyncjobs.monitor.tests.engine_setup import OFF
from plone.app.asyncjobs.monitor.tests.engine_setup import THIS
from plone.app.asyncjobs.monitor.tests.engine_setup import BadRepr
from plone.app.asyncjobs.monitor.tests.engine_setup import SlowRepr
from plone.app.asyncjobs.monitor.tests.engine_setup import ask_json
from plone.app.asyncjobs.monitor.tests.engine_setup import fake_records  # noqa: F401
from plone.app.asyncjobs.monitor.tests.engine_setup import job_id
from plone.app.asyncjobs.monitor.tests.engine_setup import monitor_thread  # noqa: F401
from plone.app.asyncjobs.monitor.tests.engine_setup import scheduled
from plone.app.asyncjobs.monitor.tests.engine_setup import stop_dispatcher
from plone.app.asyncjobs.monitor.tests.engine_setup import worker  # noqa: F401


PREFIX = "plone.app.asyncjobs.monitor.tests.engine_setup."
TOOLS = ["count", "help", "job", "jobs", "jobstats", "lastcompleted",
         "nextpending", "status", "traceback", "UUIDs"]


@pytest.fixture
def address(worker, fake_records, monitor_thread):  # noqa: F811
    return monitor_thread({"asyncdb": AsyncDBCommand(worker.db), "async": async_})


@pytest.fixture
def ids(worker, fake_records):  # noqa: F811
    """Job ids by the names `engine_setup` gives the jobs."""
    return {name: job_id(job) for name, job in worker.jobs.items()}


@pytest.fixture
def register():
    """Register monitor databases for a test; unregister them after."""
    names = []

    def register(name, db):
        databases.register_database(name, db)
        names.append(name)

    yield register
    for name in names:
        databases.unregister_database(name)


def parse_time(text):
    assert text.endswith("Z"), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def seconds(encoded):
    return timedelta(**encoded).total_seconds()


# -- count and jobs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "states, expected",
    [
        ("pending", 2), ("assigned", 1), ("active", 1), ("callbacks", 0),
        ("completed", 2), ("succeeded", 1), ("failed", 1),
        ("pending active", 3), ("pending assigned active callbacks completed", 6),
    ],
)
def test_count_by_state(address, states, expected):
    assert ask_json(address, f"asyncdb count {states}") == expected


def test_count_needs_valid_states(address):
    assert ask(address, "asyncdb count\n") == (
        "Error: asyncdb count: give one or more states: pending, assigned, "
        "active, callbacks, completed, succeeded, failed\n"
    )
    assert ask(address, "asyncdb count succeeded failed\n") == (
        "Error: asyncdb count: give only one of completed, succeeded and failed\n"
    )
    assert ask(address, "asyncdb count running\n") == (
        "Error: asyncdb count: unknown state 'running' (states: pending, "
        "assigned, active, callbacks, completed, succeeded, failed)\n"
    )


def test_jobs_by_state(address, ids):
    assert ask_json(address, "asyncdb jobs pending") == [ids["scheduled"], ids["other"]]
    assert ask_json(address, "asyncdb jobs active") == [ids["long"]]
    assert ask_json(address, "asyncdb jobs assigned") == [ids["held"]]
    assert ask_json(address, "asyncdb jobs succeeded") == [ids["succeed"]]
    assert ask_json(address, "asyncdb jobs failed") == [ids["fail"]]
    assert ask_json(address, "asyncdb jobs callbacks") == []
    # Pending first, then held jobs by start (the assigned one has not
    # started: it counts as starting now), then completed ones.
    everything = ask_json(address, "asyncdb jobs completed active assigned pending")
    assert everything[:4] == [ids["scheduled"], ids["other"], ids["long"], ids["held"]]
    assert sorted(map(tuple, everything[4:])) == sorted([tuple(ids["succeed"]), tuple(ids["fail"])])


def test_completed_jobs_come_newest_first(address, ids):
    details = ask_json(address, "asyncdb jobs completed display:details")
    assert [d["id"] for d in details] in ([ids["succeed"], ids["fail"]], [ids["fail"], ids["succeed"]])
    times = [parse_time(d["completed"]) for d in details]
    assert times == sorted(times, reverse=True)
    newest = ask_json(address, "asyncdb jobs completed count:1")
    assert newest == [details[0]["id"]]


def test_jobs_display(address, ids):
    [text] = ask_json(address, "asyncdb jobs succeeded display:repr")
    assert text.startswith("<plone.app.asyncjobs.engine.job.Job (oid ")
    assert text.endswith(f"``{PREFIX}succeed(21)``>")
    [details] = ask_json(address, "asyncdb jobs succeeded display:details")
    assert details["id"] == ids["succeed"] and details["result"] == "42"
    assert ask_json(address, "asyncdb jobs succeeded display:default") == [ids["succeed"]]
    assert ask(address, "asyncdb jobs succeeded display:detail\n") == (
        "Error: asyncdb jobs: display: 'detail' is not one of default, repr, details\n"
    )
    assert ask(address, "asyncdb jobs pending count:none\n") == (
        "Error: asyncdb jobs: count: 'none' is not a positive integer\n"
    )
    assert ask_json(address, "asyncdb jobs pending count:1") == [ids["scheduled"]]


# -- filters ---------------------------------------------------------------------------------


def test_callable_and_queue_filters(address, ids):
    assert ask_json(address, "asyncdb jobs completed callable:succeed") == [ids["succeed"]]
    assert ask_json(address, "asyncdb jobs completed callable:succ*") == [ids["succeed"]]
    assert ask_json(address, "asyncdb jobs completed callable:*.engine_setup.fail") == [ids["fail"]]
    assert ask_json(address, "asyncdb jobs completed callable:engine_setup.fail") == []
    assert ask_json(address, "asyncdb jobs pending queue:other") == [ids["other"]]
    assert ask_json(address, "asyncdb jobs pending queue:") == [ids["scheduled"]]
    assert ask_json(address, "asyncdb jobs pending queue:o*") == [ids["other"]]
    assert ask_json(address, "asyncdb count pending completed queue:nosuch") == 0


def test_agent_and_uuid_filters(address, ids):
    # Held and completed jobs: by the agent and dispatcher holding them.
    assert ask_json(address, f"asyncdb jobs assigned uuid:{DEAD}") == [ids["held"]]
    assert ask_json(address, "asyncdb jobs assigned uuid:THIS") == []
    assert ask_json(address, "asyncdb jobs active uuid:THIS agent:main") == [ids["long"]]
    assert ask_json(address, "asyncdb jobs active agent:picky") == []
    assert ask_json(address, f"asyncdb count completed uuid:{THIS}") == 2
    # Pending jobs: those the agents selected would accept.
    assert ask_json(address, "asyncdb jobs pending agent:picky") == [ids["scheduled"]]
    assert ask_json(address, f"asyncdb jobs pending uuid:{ALIVE}") == [ids["scheduled"]]
    assert ask_json(address, "asyncdb jobs pending uuid:THIS") == [ids["scheduled"], ids["other"]]
    assert ask_json(address, f"asyncdb jobs pending uuid:{OFF}") == []  # deactivated
    assert ask(address, "asyncdb jobs pending agent:leg*\n") == (
        f"Error: asyncdb jobs: agent 'legacy' of dispatcher {DEAD} chooses its "
        "jobs with a chooser, so which pending jobs it would take is unknown\n"
    )
    assert ask(address, "asyncdb jobs pending uuid:someone\n") == (
        "Error: asyncdb jobs: uuid: 'someone' is not a UUID\n"
    )


def test_time_filters(address, ids):
    assert ask_json(address, "asyncdb jobs active start:since1h") == [ids["long"]]
    assert ask_json(address, "asyncdb count completed end:since1h") == 2
    assert ask_json(address, "asyncdb count completed end:before1h") == 0
    assert ask_json(address, "asyncdb count completed end:since1h,before0s") == 2
    assert ask_json(address, "asyncdb count completed callbacks_completed:since1d") == 2
    # The pending jobs are due in one and two hours.
    assert ask_json(address, "asyncdb count pending requested_start:since0s") == 2
    assert ask_json(address, "asyncdb count pending requested_start:before0s") == 0
    assert ask_json(address, "asyncdb count assigned requested_start:before0s") == 1
    # start: leaves out pending jobs, end: running ones too, and
    # callbacks_completed: all but completed ones.
    assert ask_json(address, "asyncdb count pending start:since1d") == 0
    assert ask_json(address, "asyncdb count active end:since1d") == 0
    assert ask_json(address, "asyncdb count active callbacks_completed:since1d") == 0
    for value in ("1h", "sinceyesterday", "since1h,since2h", "after1h"):
        assert ask(address, f"asyncdb count completed end:{value}\n").startswith(
            "Error: asyncdb count: end:"
        ), value


# -- job, traceback, nextpending, lastcompleted ---------------------------------------------


def test_job_describes_a_completed_job(address, ids):
    oid, database = ids["succeed"]
    info = ask_json(address, f"asyncdb job {oid}")
    assert sorted(info) == sorted([
        "active", "active end", "active start", "agent", "args", "assigner",
        "attempts", "begin after", "begin by", "callable", "callbacks",
        "completed", "dispatcher", "failed", "id", "kwargs", "parent job",
        "queue", "quota names", "repr", "result", "status", "wait",
    ])
    assert info["id"] == [oid, database]
    assert info["callable"] == PREFIX + "succeed"
    assert (info["args"], info["kwargs"]) == (["21"], {})
    assert (info["status"], info["failed"], info["result"]) == ("completed", False, "42")
    assert (info["queue"], info["agent"], info["dispatcher"]) == ("", "main", str(THIS))
    assert info["assigner"] == str(THIS)
    assert info["attempts"] == 1 and info["callbacks"] == [] and info["parent job"] is None
    begin, start, end = (parse_time(info[k]) for k in ("begin after", "active start", "active end"))
    assert begin <= start <= end == parse_time(info["completed"])
    assert seconds(info["wait"]) == pytest.approx((start - begin).total_seconds(), abs=1e-6)
    assert seconds(info["active"]) == pytest.approx((end - start).total_seconds(), abs=1e-6)
    assert ask_json(address, f"asyncdb job {oid} {database}") == info


def test_job_describes_pending_failed_and_assigned_jobs(address, ids):
    pending = ask_json(address, f"asyncdb job {ids['scheduled'][0]}")
    assert (pending["status"], pending["agent"], pending["result"]) == ("pending", None, None)
    assert pending["wait"] is None  # not due yet
    assert parse_time(pending["begin after"]) > utcnow() + timedelta(minutes=59)
    failed = ask_json(address, f"asyncdb job {ids['fail'][0]}")
    assert failed["failed"] is True  # and a brief traceback:
    assert failed["result"].startswith("Traceback: <class 'ValueError'>: as planned\n")
    held = ask_json(address, f"asyncdb job {ids['held'][0]}")
    assert (held["status"], held["agent"], held["dispatcher"]) == ("assigned", "main", str(DEAD))
    assert seconds(held["wait"]) >= 0 and held["active"] is None
    other = ask_json(address, f"asyncdb job {ids['other'][0]}")
    assert other["queue"] == "other"


def test_job_errors(address):
    assert ask(address, "asyncdb job 999999\n") == (
        "Error: asyncdb job: no object 999999 in database 'unnamed'\n"
    )
    assert ask(address, "asyncdb job 0\n") == (
        "Error: asyncdb job: object 0 of database 'unnamed' is not a job but "
        "persistent.mapping.PersistentMapping (oid 0, db 'unnamed')\n"
    )
    assert ask(address, "asyncdb job 1 catalog\n") == (
        "Error: asyncdb job: no database 'catalog' in this database set (names: unnamed)\n"
    )
    assert ask(address, "asyncdb job first\n") == (
        "Error: asyncdb job: OID 'first' is not an oid (an integer)\n"
    )
    assert ask(address, "asyncdb job\n") == (
        "Error: asyncdb job: OID missing (usage: asyncdb job OID [DATABASE] "
        "[database:NAME])\n"
    )


def test_an_argument_whose_repr_raises_is_described(address, worker):  # noqa: F811
    def queue_job(root):
        queue = root["plone.app.asyncjobs"][""]
        job = Job(scheduled, BadRepr(), option=BadRepr())
        return queue.put(job, begin_after=utcnow() + timedelta(hours=3))

    job = worker.in_transaction(queue_job)
    shown = f"<unrepresentable {PREFIX}BadRepr: RuntimeError>"
    info = ask_json(address, f"asyncdb job {job_id(job)[0]}")
    assert (info["args"], info["kwargs"]) == ([shown], {"option": shown})
    details = ask_json(address, "asyncdb jobs pending display:details")
    assert [d["args"] for d in details if d["id"] == job_id(job)] == [[shown]]


def test_an_argument_that_cannot_be_loaded_is_described(address, worker):  # noqa: F811
    # asyncdb job failed with StateLoadError, and so did display:details.
    from plone.app.asyncjobs.engine.testing.chaos import Unloadable

    def queue_job(root):
        queue = root["plone.app.asyncjobs"][""]
        return queue.put(Job(scheduled, Unloadable()),
                         begin_after=utcnow() + timedelta(hours=3))

    job = worker.in_transaction(queue_job)
    info = ask_json(address, f"asyncdb job {job_id(job)[0]}")
    assert info["args"][0].startswith("<arguments cannot be loaded")
    details = ask_json(address, "asyncdb jobs pending display:details")
    assert [d["kwargs"] for d in details if d["id"] == job_id(job)] == [{}]


def test_traceback(address, ids):
    oid = ids["fail"][0]
    text = ask_json(address, f"asyncdb traceback {oid}")
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("ValueError: as planned\n")
    assert "in fail" in text
    brief = ask_json(address, f"asyncdb traceback {oid} unnamed detail:brief")
    assert "ValueError" in brief and len(brief) < len(text)
    assert "ValueError: as planned" in ask_json(address, f"asyncdb traceback {oid} detail:verbose")
    assert ask_json(address, f"asyncdb traceback {ids['succeed'][0]}") is None
    assert ask_json(address, f"asyncdb traceback {ids['scheduled'][0]}") is None
    assert ask(address, f"asyncdb traceback {oid} detail:full\n") == (
        "Error: asyncdb traceback: detail: 'full' is not one of brief, default, verbose\n"
    )
    assert ask(address, "asyncdb traceback 999999\n").startswith("Error: asyncdb traceback: no object")


def test_nextpending(address, ids):
    assert ask_json(address, "asyncdb nextpending")["id"] == ids["scheduled"]
    assert ask_json(address, "asyncdb nextpending queue:other")["id"] == ids["other"]
    assert ask_json(address, "asyncdb nextpending agent:picky")["id"] == ids["scheduled"]
    assert ask_json(address, "asyncdb nextpending requested_start:since90m")["id"] == ids["scheduled"]
    assert ask_json(address, "asyncdb nextpending callable:nosuch") is None
    assert ask(address, "asyncdb nextpending start:since1h\n").startswith(
        "Error: asyncdb nextpending: unknown argument 'start:'"
    )
    assert ask(address, "asyncdb nextpending pending\n").startswith(
        "Error: asyncdb nextpending: unexpected argument 'pending'"
    )


def test_lastcompleted(address, ids):
    newest = ask_json(address, "asyncdb jobs completed count:1")[0]
    assert ask_json(address, "asyncdb lastcompleted")["id"] == newest
    assert ask_json(address, "asyncdb lastcompleted callable:fail")["id"] == ids["fail"]
    assert ask_json(address, "asyncdb lastcompleted end:since1h callable:succeed")["id"] == ids["succeed"]
    assert ask_json(address, "asyncdb lastcompleted queue:other") is None
    assert ask_json(address, f"asyncdb lastcompleted uuid:{DEAD}") is None


# -- jobstats ----------------------------------------------------------------------------------


def test_jobstats_counts_every_state(address, ids):
    stats = ask_json(address, "asyncdb jobstats")
    counts = {k: v for k, v in stats.items() if isinstance(v, int)}
    assert counts == {
        "pending": 2, "assigned": 1, "active": 1, "callbacks": 0,
        "succeeded": 1, "failed": 1,
    }
    assert sorted(k for k in stats if k not in counts) == [
        "longest active", "longest wait", "shortest active", "shortest wait",
    ]
    # The job running until the test ends has been active the longest.
    assert stats["longest active"][1] == ids["long"]


def test_jobstats_shortest_is_the_shortest(address, ids):
    """zc.async compared "shortest" like "longest"; here it is the minimum."""
    stats = ask_json(address, "asyncdb jobstats completed")
    details = ask_json(address, "asyncdb jobs completed display:details")
    for kind in ("wait", "active"):
        durations = sorted((seconds(d[kind]), d["id"]) for d in details)
        shortest, longest = stats[f"shortest {kind}"], stats[f"longest {kind}"]
        assert seconds(shortest[0]) == pytest.approx(durations[0][0])
        assert seconds(longest[0]) == pytest.approx(durations[-1][0])
        assert seconds(shortest[0]) <= seconds(longest[0])
        if durations[0][0] != durations[-1][0]:
            assert (shortest[1], longest[1]) == (durations[0][1], durations[-1][1])
    assert (stats["succeeded"], stats["failed"], stats["pending"]) == (1, 1, 0)


def test_jobstats_filters_and_display(address, ids):
    other = ask_json(address, "asyncdb jobstats queue:other")
    assert other["pending"] == 1 and other["succeeded"] == 0
    assert other["longest wait"] is None and other["shortest active"] is None  # not due
    detailed = ask_json(address, "asyncdb jobstats active display:details")
    assert detailed["longest active"][1]["id"] == ids["long"]
    assert detailed["longest active"][1]["status"] == "active"
    shown = ask_json(address, "asyncdb jobstats active display:repr")["shortest wait"][1]
    assert shown.endswith(f"``{PREFIX}wait_for_release()``>")


# -- UUIDs and status ------------------------------------------------------------------------


def test_uuids_lists_the_activated_dispatchers(address):
    assert ask_json(address, "asyncdb UUIDs") == [str(THIS), str(ALIVE), str(DEAD)]
    assert ask_json(address, "asyncdb UUIDs queue:other") == [str(THIS)]


def test_status_lists_every_dispatcher_record(address):
    status = ask_json(address, "asyncdb status")
    assert sorted(status) == ["", "other"]
    assert status[""]["len"] == 1 and status["other"]["len"] == 1
    records = status[""]["dispatchers"]
    assert sorted(records) == [str(THIS), str(ALIVE), str(DEAD), str(OFF)]
    assert {uuid: record["state"] for uuid, record in records.items()} == {
        str(THIS): "alive", str(ALIVE): "alive", str(DEAD): "dead", str(OFF): "deactivated",
    }
    this = records[str(THIS)]
    assert sorted(this) == [
        "activated", "agents", "dead", "last ping", "paused", "ping death interval",
        "ping interval", "process", "since ping", "state",
    ]
    assert this["paused"] is False
    assert this["process"] == [socket.gethostname(), os.getpid()]
    assert this["dead"] is False
    assert this["ping interval"] == {"seconds": 30.0}
    assert this["ping death interval"] == {"minutes": 1}
    assert this["agents"]["main"]["size"] == 3
    assert (this["agents"]["main"]["filter"], this["agents"]["main"]["chooser"]) == (None, None)
    assert this["agents"]["main"]["len"] >= 1  # the running job
    assert records[str(ALIVE)]["agents"] == {
        "picky": {"size": 1, "len": 0, "filter": PREFIX + "only_scheduled", "chooser": None},
    }
    assert records[str(ALIVE)]["process"] == ["otherhost", 4242]


def test_status_shows_dead_and_deactivated_dispatchers(address):
    records = ask_json(address, "asyncdb status")[""]["dispatchers"]
    dead = records[str(DEAD)]
    assert dead["dead"] is True and dead["state"] == "dead"
    assert dead["process"] == ["lost", 99]
    assert seconds(dead["since ping"]) >= 600
    assert parse_time(dead["activated"]) < utcnow() - timedelta(minutes=9)
    assert dead["agents"] == {
        "main": {"size": 2, "len": 1, "filter": PREFIX + "only_held", "chooser": None},
        "legacy": {"size": 1, "len": 0, "filter": None, "chooser": PREFIX + "choose_nothing"},
    }
    off = records[str(OFF)]
    assert off["state"] == "deactivated" and off["activated"] is None and off["process"] is None
    assert off["agents"] == {}


def test_status_shows_a_dispatcher_with_overdue_pings_as_stuck(address, worker):  # noqa: F811
    # ALIVE pings every 30 s and is dead after an hour of silence: stuck
    # from halfway (as the job console says, engine.status.dispatcher_state).
    def set_last_sign(moment):
        def change(root):
            record = root["plone.app.asyncjobs"][""].dispatchers[ALIVE]
            record.activated = record.last_ping = moment
        worker.in_transaction(change, "moving the last ping")

    set_last_sign(utcnow() - timedelta(minutes=40))
    try:
        record = ask_json(address, "asyncdb status")[""]["dispatchers"][str(ALIVE)]
        assert (record["state"], record["dead"]) == ("stuck", False)
    finally:
        set_last_sign(utcnow())


def test_status_shows_a_paused_dispatcher_as_paused(address, worker):  # noqa: F811
    def pause(root):
        root["plone.app.asyncjobs"][""].dispatchers[THIS].pause()

    worker.in_transaction(pause, "pause")
    record = ask_json(address, "asyncdb status")[""]["dispatchers"][str(THIS)]
    assert (record["state"], record["paused"]) == ("alive", True)


@pytest.mark.parametrize("command", ["asyncdb job 18446744073709551616",
                                     "asyncdb jobs completed start:since99999999999d",
                                     "asyncdb jobs pending count:99999999999999999999",
                                     "asyncdb jobs pending count:" + "9" * 5000])
def test_arguments_out_of_range_are_refused_clearly(address, command):
    answer = ask(address, command + "\n")
    assert answer.startswith("Error: asyncdb") and "\n" not in answer[:-1], answer
    assert "Overflow" not in answer and "failed" not in answer, answer


def test_status_filters(address):
    assert list(ask_json(address, "asyncdb status queue:oth*")) == ["other"]
    by_uuid = ask_json(address, f"asyncdb status uuid:{DEAD}")
    assert list(by_uuid[""]["dispatchers"]) == [str(DEAD)]
    assert by_uuid["other"]["dispatchers"] == {}
    assert list(ask_json(address, "asyncdb status uuid:THIS")["other"]["dispatchers"]) == [str(THIS)]
    by_agent = ask_json(address, "asyncdb status agent:legacy")[""]["dispatchers"]
    assert by_agent[str(DEAD)]["agents"] == {
        "legacy": {"size": 1, "len": 0, "filter": None, "chooser": PREFIX + "choose_nothing"},
    }
    assert by_agent[str(THIS)]["agents"] == {}
    assert ask(address, "asyncdb status callable:x\n").startswith(
        "Error: asyncdb status: unknown argument 'callable:'"
    )


def test_status_after_the_dispatcher_stopped(address, worker):  # noqa: F811
    stop_dispatcher(worker.dispatcher)
    records = ask_json(address, "asyncdb status")[""]["dispatchers"]
    assert records[str(THIS)]["state"] == "deactivated"
    assert records[str(DEAD)]["state"] == "dead"
    # Stopping handed nothing back: the long job was released and completed.
    assert ask_json(address, "asyncdb count completed") == 3


# -- help ----------------------------------------------------------------------------------------


def test_help(address):
    listing = ask(address, "asyncdb help\n")
    assert listing.splitlines()[0] == 'Tools of asyncdb ("asyncdb help TOOL" describes one):'
    assert [line.split(" -- ")[0].strip() for line in listing.splitlines()[1:]] == TOOLS
    assert ask(address, "asyncdb\n") == listing
    assert ask(address, "asyncdb help status\n").startswith(
        "Usage: asyncdb status [queue:GLOB] [agent:GLOB] [uuid:UUID] [database:NAME]\n\n"
        "Show every queue and every dispatcher record in it.\n"
    )
    assert ask(address, "asyncdb nosuch\n") == (
        "Error: Unknown tool 'nosuch' for asyncdb (tools: count, help, job, jobs, "
        "jobstats, lastcompleted, nextpending, status, traceback, UUIDs); try "
        '"asyncdb help"\n'
    )
    assert "  asyncdb -- Show the jobs and dispatchers stored in the database (read-only).\n" in (
        ask(address, "help\n")
    )


# -- which database -------------------------------------------------------------------------------


def test_the_database_registered_as_main(worker, fake_records, monitor_thread, register):  # noqa: F811
    register("main", worker.db)
    address = monitor_thread({"asyncdb": AsyncDBCommand()})
    assert ask_json(address, "asyncdb count pending") == 2
    assert ask_json(address, "asyncdb count pending database:main") == 2
    assert ask(address, "asyncdb count pending database:catalog\n") == (
        "Error: asyncdb count: no database is registered as 'catalog' (registered: main)\n"
    )


def test_database_choice_order(worker, fake_records, monitor_thread, register):  # noqa: F811
    empty = ZODB.DB(None)
    try:
        register("main", empty)
        register("jobs", worker.db)
        address = monitor_thread({
            "asyncdb": AsyncDBCommand(),
            "asyncdb_given": AsyncDBCommand(worker.db),
        })
        # "main" comes before the dispatcher's database ...
        assert ask(address, "asyncdb UUIDs\n") == (
            "Error: asyncdb UUIDs: the database has no job queues (no "
            "root['plone.app.asyncjobs']); no worker has started on it yet\n"
        )
        assert ask_json(address, "asyncdb UUIDs database:jobs") == [str(THIS), str(ALIVE), str(DEAD)]
        # ... and the database given at set-up before "main".
        assert ask_json(address, "asyncdb_given count pending") == 2
        assert ask(address, "asyncdb_given count pending database:main\n").startswith(
            "Error: asyncdb count: the database has no job queues"
        )
        databases.unregister_database("main")
        # Then the database of the dispatcher running here.
        assert ask_json(address, "asyncdb count pending") == 2
    finally:
        empty.close()


def test_without_a_database(monitor_thread, register):  # noqa: F811
    address = monitor_thread({"asyncdb": AsyncDBCommand()})
    assert ask(address, "asyncdb count pending\n") == (
        "Error: asyncdb count: which database? none is registered as 'main' and "
        "no dispatcher runs here; give database:NAME\n"
    )
    only = ZODB.DB(None)
    try:
        register("catalog", only)
        register("other", only)
        assert ask(address, "asyncdb status\n").endswith(
            "give database:NAME (registered: catalog, other)\n"
        )
        databases.unregister_database("other")
        assert ask(address, "asyncdb status\n").startswith(  # the only one
            "Error: asyncdb status: the database has no job queues"
        )
    finally:
        only.close()


# -- read-only, and never in the way of the dispatcher --------------------------------------


def test_asyncdb_never_writes(address, worker, ids):  # noqa: F811
    # Stop the dispatcher, the only other writer, then try every tool.
    stop_dispatcher(worker.dispatcher)
    storage = worker.db.storage
    before = storage.lastTransaction()
    size = storage.getSize()
    oid = ids["fail"][0]
    lines = [
        "count pending assigned active callbacks completed",
        "jobs pending assigned active callbacks completed display:details",
        "jobs failed display:repr callable:f* queue: agent:main uuid:THIS",
        f"job {oid}", f"job {ids['held'][0]}", f"job {ids['scheduled'][0]}",
        "nextpending", "lastcompleted", f"traceback {oid} detail:verbose",
        "jobstats display:details", "UUIDs", "status", "help", "help jobs",
        "job 0", "job 999999", "count", "nosuch",
    ]
    for line in lines:
        ask(address, f"asyncdb {line}\n")
    assert storage.lastTransaction() == before
    assert storage.getSize() == size


def test_reading_aborts_and_refuses_commits(worker):  # noqa: F811
    before = worker.db.storage.lastTransaction()
    with reading(worker.db) as connection:
        connection.root()["scribble"] = 1
        with pytest.raises(RuntimeError, match="asyncdb reads only"):
            connection.transaction_manager.commit()
    with reading(worker.db) as connection:
        assert "scribble" not in connection.root()
    with pytest.raises(ZeroDivisionError):
        with reading(worker.db) as connection:
            connection.root()["scribble"] = 1 / 0
    assert worker.db.storage.lastTransaction() == before


def test_a_slow_asyncdb_command_does_not_stop_the_polls(address, worker):  # noqa: F811
    SlowRepr.entered.clear()
    SlowRepr.release.clear()

    def queue_slow_job(root):
        queue = root["plone.app.asyncjobs"][""]
        return queue.put(Job(scheduled, SlowRepr()), begin_after=utcnow() + timedelta(hours=3))

    oid = job_id(worker.in_transaction(queue_slow_job))[0]
    try:
        with connect(address) as sock:
            sock.sendall(f"asyncdb job {oid}\n".encode())
            wait_until(SlowRepr.entered.is_set, describe=lambda: "waiting for the command")
            # While the command is stuck, the dispatcher keeps polling ...
            wait_for_poll(worker.dispatcher, count=5)
            # ... and the monitor answers other commands.
            assert ask_json(address, "async status")["status"] == "RUNNING"
            assert ask_json(address, "asyncdb count pending") == 3
            SlowRepr.release.set()
            info = json.loads(read_to_end(sock))
    finally:
        SlowRepr.release.set()
    assert info["args"] == ["<slow argument>"]
    assert info["status"] == "pending"


def test_asyncdb_refuses_to_run_in_a_dispatcher_reactor_thread(worker):  # noqa: F811
    class Connection:
        def write(self, text):
            raise AssertionError("nothing should be written")

    with pytest.raises(RuntimeError, match="reactor thread"):
        blockingCallFromThread(
            worker.dispatcher.reactor, AsyncDBCommand(worker.db), Connection(), "count", "pending"
        )


def test_the_registered_plugin():
    assert IMonitorPlugin.providedBy(asyncdb)
    assert asyncdb.db is None  # it finds its database at each call


def test_asyncdb_closes_its_connection(address, worker):  # noqa: F811
    def open_connections():
        return sum(1 for info in worker.db.connectionDebugInfo() if info["opened"])

    opened = open_connections()
    ask(address, "asyncdb status\n")
    ask(address, "asyncdb job 999999\n")  # an error too
    assert open_connections() == opened
