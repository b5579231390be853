"""The ``async`` command, asked over real TCP connections of a monitor
server, about a real dispatcher running jobs (see `.engine_setup`)."""

import sys
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
import ZODB

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.testing.waiting import wait_for_poll
from plone.app.asyncjobs.monitor.async_command import AsyncCommand
from plone.app.asyncjobs.monitor.async_command import async_
from plone.app.asyncjobs.monitor.interfaces import CommandError
from plone.app.asyncjobs.monitor.interfaces import IMonitorPlugin
from plone.app.asyncjobs.monitor.tests.client import ask
from plone.app.asyncjobs.monitor.tests.engine_setup import THIS
from plone.app.asyncjobs.monitor.tests.engine_setup import ask_json
from plone.app.asyncjobs.monitor.tests.engine_setup import job_id
from plone.app.asyncjobs.monitor.tests.engine_setup import monitor_thread  # noqa: F401
from plone.app.asyncjobs.monitor.tests.engine_setup import stop_dispatcher
from plone.app.asyncjobs.monitor.tests.engine_setup import worker  # noqa: F401
from plone.app.asyncjobs.monitor.tool_commands import encode_datetime
from plone.app.asyncjobs.monitor.tool_commands import encode_timedelta
from plone.app.asyncjobs.monitor.tool_commands import parse_count
from plone.app.asyncjobs.monitor.tool_commands import parse_interval
from plone.app.asyncjobs.monitor.tool_commands import parse_poll_point


TOOLS = ["help", "job", "jobs", "jobstats", "poll", "polls", "status", "utcnow", "UUID"]


@pytest.fixture
def address(worker, monitor_thread):  # noqa: F811
    return monitor_thread({"async": async_})


def parse_time(text):
    assert text.endswith("Z"), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def seconds(encoded):
    return timedelta(**encoded).total_seconds()


# -- status, UUID, utcnow ---------------------------------------------------------------


def test_status_of_the_running_dispatcher(address):
    status = ask_json(address, "async status")
    assert sorted(status) == ["pickups", "poll interval", "push", "status",
                              "time since last poll", "uptime", "uuid"]
    assert status["push"] == "invalidations"
    assert status["status"] == "RUNNING"
    assert status["uuid"] == str(THIS)
    assert status["poll interval"] == {"seconds": 0.1}
    assert 0 <= seconds(status["time since last poll"]) < 5
    assert 0 < seconds(status["uptime"]) < 60
    assert ask_json(address, f"async status uuid:{THIS}")["uuid"] == str(THIS)
    assert ask_json(address, f"async status uuid:{THIS.hex}")["uuid"] == str(THIS)


def test_output_is_indented_json_with_sorted_keys(address):
    output = ask(address, "async status\n")
    assert output.startswith('{\n    "pickups": {\n        "by": {\n')
    assert output.endswith("}\n")


def test_status_of_a_dispatcher_not_running_here(address):
    other = uuid.UUID(int=2)
    assert ask(address, f"async status uuid:{other}\n") == (
        f"Error: No dispatcher {other} runs in this process (running: {THIS})\n"
    )
    assert ask(address, "async status uuid:nonsense\n") == (
        "Error: async status: uuid: 'nonsense' is not a UUID\n"
    )


def test_status_shows_how_the_recent_jobs_were_picked_up(address):
    pickups = ask_json(address, "async status")["pickups"]
    assert pickups["jobs"] >= 1
    assert sum(pickups["by"].values()) == pickups["jobs"]
    assert set(pickups["by"]) <= {"push", "timer", "poll", "next"}
    latency = {key: seconds(value) for key, value in pickups["latency"].items()}
    assert sorted(latency) == ["max", "p50", "p90", "p99"]
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


def test_uuid_and_utcnow(address):
    assert ask_json(address, "async UUID") == str(THIS)
    now = parse_time(ask_json(address, "async utcnow"))
    assert abs(now - utcnow()) < timedelta(seconds=5)


# -- jobs and job -----------------------------------------------------------------------


def test_jobs_lists_the_jobs_running_now(address, worker):  # noqa: F811
    running = [job_id(worker.jobs["long"])]
    assert ask_json(address, "async jobs") == running
    assert ask_json(address, "async jobs queue:") == running  # the default queue
    assert ask_json(address, "async jobs agent:main") == running
    assert ask_json(address, f"async jobs queue: agent:main uuid:{THIS}") == running
    assert ask_json(address, "async jobs queue:other") == []
    assert ask_json(address, "async jobs agent:nosuch") == []


def test_job_describes_a_job_ran_recently(address, worker):  # noqa: F811
    oid, database = job_id(worker.jobs["succeed"])
    info = ask_json(address, f"async job {oid}")
    assert sorted(info) == [
        "agent", "attempt", "call", "cancelled", "completed", "failed", "id", "pickup",
        "pickup latency", "queue", "quota names", "reassigned", "result", "started", "thread",
        "timed out", "timeout",
    ]
    assert info["attempt"] == 1
    assert info["id"] == [oid, database]
    assert "succeed(21)" in info["call"]
    assert (info["queue"], info["agent"]) == ("", "main")
    assert info["result"] == "42"
    assert info["failed"] is False and info["reassigned"] is False
    assert info["cancelled"] is False
    assert info["timed out"] is False and info["timeout"] is None
    assert parse_time(info["started"]) <= parse_time(info["completed"])
    assert ask_json(address, f"async job {oid} {database}") == info
    assert ask_json(address, f"async job {oid} {database} uuid:{THIS}") == info


def test_job_describes_failed_and_running_jobs(address, worker):  # noqa: F811
    failed = ask_json(address, f"async job {job_id(worker.jobs['fail'])[0]}")
    assert failed["failed"] is True
    assert "ValueError" in failed["result"] and "as planned" in failed["result"]
    running = ask_json(address, f"async job {job_id(worker.jobs['long'])[0]}")
    assert running["completed"] is None and running["result"] is None


def test_job_errors(address, worker):  # noqa: F811
    oid = job_id(worker.jobs["succeed"])[0]
    assert ask(address, "async job 999999\n") == (
        "Error: async job: job 999999 is not among this dispatcher's recent jobs\n"
    )
    assert ask(address, f"async job {oid} otherdb\n") == (
        f"Error: async job: job {oid} is not among this dispatcher's recent jobs\n"
    )
    assert ask(address, "async job twelve\n") == (
        "Error: async job: OID 'twelve' is not an oid (an integer)\n"
    )
    assert ask(address, "async job\n") == (
        "Error: async job: OID missing (usage: async job OID [DATABASE] [uuid:UUID])\n"
    )
    assert ask(address, f"async job {oid} unnamed extra\n").startswith(
        "Error: async job: unexpected argument 'extra'"
    )


# -- jobstats -------------------------------------------------------------------------------


def test_jobstats_counts_the_recent_jobs(address, worker):  # noqa: F811
    stats = ask_json(address, "async jobstats")
    assert {k: stats[k] for k in ("started", "successful", "failed", "unknown")} == {
        "started": 3, "successful": 1, "failed": 1, "unknown": 1,
    }
    succeed, fail = job_id(worker.jobs["succeed"]), job_id(worker.jobs["fail"])
    for kind, job in (("successful", succeed), ("failed", fail)):
        shortest, longest = stats[f"shortest {kind}"], stats[f"longest {kind}"]
        assert shortest[1] == longest[1] == job  # one job of each kind
        assert shortest[0] == longest[0] and seconds(shortest[0]) >= 0
    assert parse_time(stats["statistics start"]) <= parse_time(stats["statistics end"])
    assert ask_json(address, "async jobstats since:1h") == stats
    assert ask_json(address, "async jobstats queue: agent:main") == stats


def test_jobstats_filters(address, worker):  # noqa: F811
    nothing = ask_json(address, "async jobstats queue:other")
    assert nothing["started"] == 0 and nothing["statistics start"] is None
    assert nothing["shortest successful"] is None
    assert ask_json(address, "async jobstats agent:other")["started"] == 0
    # The jobs were queued after the first poll.
    assert ask_json(address, "async jobstats at:1")["started"] == 0
    assert ask_json(address, "async jobstats at:1h")["started"] == 0
    latest = wait_for_poll(worker.dispatcher).key
    as_of_latest = ask_json(address, f"async jobstats at:{latest}")
    assert (as_of_latest["started"], as_of_latest["successful"], as_of_latest["unknown"]) == (3, 1, 1)
    assert ask_json(address, f"async jobstats before:{latest}")["started"] == 3
    assert ask_json(address, f"async jobstats since:{latest}")["started"] == 0


def test_jobstats_errors(address):
    assert ask(address, "async jobstats at:1 before:2\n") == (
        "Error: async jobstats: give at: or before:, not both\n"
    )
    assert ask(address, "async jobstats at:999999\n").startswith(
        "Error: No poll at poll 999999 is kept in memory (kept: polls 1 to "
    )
    assert ask(address, "async jobstats since:yesterday\n") == (
        "Error: async jobstats: since: 'yesterday' is neither a poll key (an "
        "integer) nor an interval like 1h30m (units d, h, m, s, in that order)\n"
    )


# -- poll and polls ------------------------------------------------------------------------


def test_poll_shows_the_latest_poll(address, worker):  # noqa: F811
    wait_for_poll(worker.dispatcher, count=3)
    poll = ask_json(address, "async poll")
    assert sorted(poll) == ["key", "results", "time"]
    assert poll["key"] >= 3
    assert abs(parse_time(poll["time"]) - utcnow()) < timedelta(seconds=5)
    assert poll["results"][""]["main"]["size"] == 3
    assert sorted(poll["results"]) == ["", "other"]
    assert poll["results"]["other"]["main"] == {"active jobs": [], "len": 0, "size": 3,
                                                "paused": False}


def test_poll_at_and_before(address, worker):  # noqa: F811
    wait_for_poll(worker.dispatcher, count=3)
    assert ask_json(address, "async poll at:1")["key"] == 1
    assert ask_json(address, "async poll before:3")["key"] == 2
    first = ask_json(address, "async poll at:1")
    assert ask_json(address, "async poll at:0s")["key"] >= 3  # the latest, as of now
    assert ask(address, "async poll at:1h\n").startswith("Error: No poll at 1:00:00 ago is kept")
    assert ask(address, "async poll before:1\n").startswith(
        "Error: No poll before poll 1 is kept in memory"
    )
    assert first["time"] < ask_json(address, "async poll at:2")["time"]


@pytest.mark.parametrize("argument", ["before:99999999999d", "at:99999999d", "since:36501d"])
def test_points_too_far_back_are_refused_clearly(address, worker, argument):  # noqa: F811
    name = argument.split(":")[0]
    tool = "polls" if name == "since" else "poll"
    answer = ask(address, f"async {tool} {argument}\n")
    assert answer == (f"Error: async {tool}: {name}: {argument.split(':')[1]!r} is longer "
                      "than 36500 days\n")


def test_a_paused_dispatcher_shows_as_paused(address, worker):  # noqa: F811
    def pause(root, paused=True):
        for queue in root["plone.app.asyncjobs"].values():
            record = queue.dispatchers[THIS]
            record.pause() if paused else record.resume()

    worker.in_transaction(pause, "pause")
    wait_for_poll(worker.dispatcher, count=2)
    assert ask_json(address, "async status")["status"] == "PAUSED"
    assert ask_json(address, "async poll")["results"][""]["main"]["paused"] is True
    worker.in_transaction(lambda root: pause(root, False), "resume")
    wait_for_poll(worker.dispatcher, count=2)
    assert ask_json(address, "async status")["status"] == "RUNNING"


def test_polls_lists_polls_newest_first(address, worker):  # noqa: F811
    wait_for_poll(worker.dispatcher, count=6)
    keys = [poll["key"] for poll in ask_json(address, "async polls")]
    assert len(keys) == 3 and keys == sorted(keys, reverse=True)
    assert keys[0] - keys[2] == 2
    assert len(ask_json(address, "async polls count:5")) == 5
    assert [p["key"] for p in ask_json(address, "async polls at:4 count:2")] == [4, 3]
    assert [p["key"] for p in ask_json(address, "async polls before:4")] == [3, 2, 1]
    since = [p["key"] for p in ask_json(address, "async polls at:6 since:2")]
    assert since == [6, 5, 4, 3, 2]
    everything = ask_json(address, "async polls since:1h")
    assert everything[-1]["key"] == 1 and len(everything) >= 6


def test_polls_errors(address):
    assert ask(address, "async polls count 5\n").startswith(
        "Error: async polls: unexpected argument 'count' (usage: async polls "
        "[at:POLL] [before:POLL] [since:POLL] [count:N] [uuid:UUID])"
    )
    assert ask(address, "async polls count:0\n") == (
        "Error: async polls: count: '0' is not a positive integer\n"
    )
    assert ask(address, "async polls count:3 count:4\n") == (
        "Error: async polls: count: is given twice\n"
    )


HUGE = "9" * 5000  # more digits than int() reads


@pytest.mark.parametrize("command, complaint", [
    ("polls count:99999999999999999999", f"is larger than {sys.maxsize}"),
    (f"polls count:{HUGE}", f"is larger than {sys.maxsize}"),
    (f"poll at:{HUGE}", "is larger than any poll key"),
    (f"polls before:{HUGE}", "is larger than any poll key"),
    (f"jobstats since:{HUGE}", "is larger than any poll key"),
])
def test_huge_numbers_are_refused_clearly(address, command, complaint):
    tool, argument = command.split()
    name, value = argument.split(":")
    assert ask(address, f"async {command}\n") == (
        f"Error: async {tool}: {name}: {value!r} {complaint}\n"
    )


# -- help and argument conventions --------------------------------------------------------


def test_help_lists_and_describes_the_tools(address):
    listing = ask(address, "async help\n")
    assert listing.splitlines()[0] == 'Tools of async ("async help TOOL" describes one):'
    assert [line.split(" -- ")[0].strip() for line in listing.splitlines()[1:]] == TOOLS
    assert ask(address, "async\n") == listing
    description = ask(address, "async help polls\n")
    assert description.startswith(
        "Usage: async polls [at:POLL] [before:POLL] [since:POLL] [count:N] [uuid:UUID]\n\n"
        "List recent polls of the dispatcher, newest first.\n"
    )
    assert ask(address, "async help nosuch\n") == "Error: async help: no tool named 'nosuch'\n"


def test_server_help_shows_the_command(address):
    assert "  async -- Show the job dispatchers of this process, from memory (no database).\n" in (
        ask(address, "help\n")
    )
    assert "Tools: status, jobs, job, jobstats, poll, polls, utcnow, UUID, help." in (
        ask(address, "help async\n")
    )


def test_unknown_tools_and_misplaced_arguments(address):
    assert ask(address, "async frobnicate\n") == (
        "Error: Unknown tool 'frobnicate' for async (tools: help, job, jobs, "
        'jobstats, poll, polls, status, utcnow, UUID); try "async help"\n'
    )
    assert ask(address, f"async job uuid:{THIS} 5\n") == (
        "Error: async job: the argument '5' must come before the name:value arguments\n"
    )
    assert ask(address, "async status queue:x\n") == (
        "Error: async status: unknown argument 'queue:' (named arguments: uuid:)\n"
    )
    assert ask(address, "async utcnow now\n").startswith("Error: async utcnow: unexpected argument 'now'")


def test_async_needs_no_database(address, worker, monkeypatch):  # noqa: F811
    def no_database(*args, **kwargs):
        raise AssertionError("async opened a database connection")

    monkeypatch.setattr(worker.db, "open", no_database)
    oid = job_id(worker.jobs["succeed"])[0]
    for line in ["status", "jobs", f"job {oid}", "jobstats", "poll", "polls",
                 "utcnow", "UUID", "help"]:
        assert not ask(address, f"async {line}\n").startswith("Error"), line


# -- without a dispatcher, or with several --------------------------------------------------


def test_without_a_dispatcher(monitor_thread, monkeypatch):  # noqa: F811
    monkeypatch.delenv(instanceuuid.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(instanceuuid, "_cached", None)
    address = monitor_thread({"async": async_})
    assert ask(address, "async status\n") == "Error: No dispatcher runs in this process\n"
    assert ask(address, "async polls\n") == "Error: No dispatcher runs in this process\n"
    assert ask(address, "async UUID\n") == (
        "Error: This process has no worker UUID: ZC_ASYNC_UUID is not set and "
        "no dispatchers run here\n"
    )
    assert ask(address, "async help\n").startswith("Tools of async")


def test_with_several_dispatchers(address, worker, monkeypatch):  # noqa: F811
    second_uuid = uuid.UUID(int=9)
    db = ZODB.DB(None)
    second = configure.start(db, poll_interval=0.1, uuid=second_uuid)
    try:
        wait_for_poll(second)
        assert ask_json(address, "async status")["uuid"] == str(THIS)  # this process's own
        assert ask_json(address, f"async status uuid:{second_uuid}")["uuid"] == str(second_uuid)
        monkeypatch.setattr(instanceuuid, "configured_uuid", lambda: None)
        assert ask(address, "async status\n") == (
            f"Error: Several dispatchers run in this process ({THIS}, "
            f"{second_uuid}); choose one with uuid:UUID\n"
        )
    finally:
        stop_dispatcher(second)
        db.close()


def test_a_stopped_dispatcher_is_gone(address, worker):  # noqa: F811
    stop_dispatcher(worker.dispatcher)
    assert ask(address, "async status\n") == "Error: No dispatcher runs in this process\n"


def test_the_plugin_is_a_monitor_plugin():
    assert IMonitorPlugin.providedBy(async_)
    with pytest.raises(CommandError, match="Unknown tool"):
        async_(None, "nosuch")
    assert isinstance(async_, AsyncCommand)


# -- encoding and parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta, encoded",
    [
        (timedelta(0), {"seconds": 0.0}),
        (timedelta(seconds=90), {"minutes": 1, "seconds": 30.0}),
        (timedelta(hours=2), {"hours": 2}),
        (timedelta(days=3, microseconds=500_000), {"days": 3, "seconds": 0.5}),
        (timedelta(days=1, hours=1, minutes=1, seconds=1),
         {"days": 1, "hours": 1, "minutes": 1, "seconds": 1.0}),
        (-timedelta(seconds=90), {"minutes": -1, "seconds": -30.0}),
    ],
)
def test_durations_are_encoded_by_their_non_zero_parts(delta, encoded):
    assert encode_timedelta(delta) == encoded


def test_times_are_encoded_in_utc_with_a_z():
    moment = datetime(2026, 1, 31, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert encode_datetime(moment) == "2026-01-31T12:00:00.000005Z"
    assert encode_datetime(datetime(2026, 1, 31)) == "2026-01-31T00:00:00.000000Z"


@pytest.mark.parametrize(
    "text, value",
    [
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2D", timedelta(days=2)),
        ("1d2h3m4.5s", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_intervals(text, value):
    assert parse_interval(text, "since:") == value
    assert parse_poll_point(text, "since:") == value


@pytest.mark.parametrize("text", ["", "1x", "30m1h", "h", "1.5h", "-1h"])
def test_bad_intervals(text):
    with pytest.raises(CommandError):
        parse_interval(text, "since:")


def test_poll_keys():
    assert parse_poll_point("17", "at:") == 17
    assert parse_poll_point("0" * 5000 + "17", "at:") == 17


def test_counts():
    assert parse_count("17", "count:") == 17
    assert parse_count("0" * 5000 + "17", "count:") == 17
    assert parse_count(str(sys.maxsize), "count:") == sys.maxsize
    for text in ("0", "00", "", "-1", "1.5", "٣"):
        with pytest.raises(CommandError, match="is not a positive integer"):
            parse_count(text, "count:")
    with pytest.raises(CommandError, match="is larger than"):
        parse_count(str(sys.maxsize + 1), "count:")
