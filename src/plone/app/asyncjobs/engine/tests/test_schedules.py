"""Recurring jobs: slots, misfire policies, exactly one job per slot."""
import dataclasses
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import schedules
from plone.app.asyncjobs.engine.schedules import Schedule
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.engine.tests import jobs
from plone.app.asyncjobs.engine.triggers import Cron
from plone.app.asyncjobs.engine.triggers import Interval


UTC = timezone.utc
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
COUNTED = "plone.app.asyncjobs.engine.tests.jobs:counted"


def every(seconds, **options):
    return Schedule("s", COUNTED, Interval(timedelta(seconds=seconds)), args=("ran",), **options)


def stored(trigger, **fields):
    """``trigger`` with ``fields`` as a database holds them from before they
    were checked."""
    for name, value in fields.items():
        object.__setattr__(trigger, name, value)
    return trigger


# -- slots ------------------------------------------------------------------------


def test_cron_slots_follow_the_timezone_across_summer_time():
    nine = Cron("0 9 * * *", "Europe/Brussels")
    assert nine.next_after(T0) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)  # CET
    assert nine.next_after(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(2026, 7, 1, 7, 0,
                                                                         tzinfo=UTC)  # CEST
    # 2:30 does not exist on 29 March 2026 in Brussels (2:00 -> 3:00): the
    # slot is the first instant after the jump, 3:00 CEST = 1:00 UTC.
    night = Cron("30 2 * * *", "Europe/Brussels")
    assert night.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC)
    # 2:30 happens twice on 25 October 2026 (3:00 -> 2:00): a slot each time.
    slot = night.next_after(datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert slot == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert night.next_after(slot) == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_latest_until_includes_a_slot_at_the_moment():
    minute = Cron("* * * * *")
    assert minute.latest_until(T0) == T0
    assert minute.latest_until(T0 + timedelta(seconds=59)) == T0
    interval = Interval(timedelta(minutes=10))
    assert interval.latest_until(T0 + timedelta(minutes=9)) == T0
    assert interval.next_after(T0) == T0 + timedelta(minutes=10)


def test_cron_with_seconds():
    assert Cron("*/1 * * * * *").next_after(T0) == T0 + timedelta(seconds=1)


def test_cron_names_of_months_and_days():
    # Letters are not all drawn fields: MAR, FRI.
    assert Cron("0 0 * MAR FRI").next_after(T0) == datetime(2026, 3, 6, tzinfo=UTC)


def test_leap_day_slots_are_up_to_eight_years_apart(clock):
    clock.set(datetime(2096, 3, 1, tzinfo=UTC))
    leap_day = Cron("0 0 29 2 *")  # 2100 is no leap year
    assert leap_day.next_after(clock.now) == datetime(2104, 2, 29, tzinfo=UTC)
    assert leap_day.latest_until(clock.now) == datetime(2096, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize("make, message", [
    (lambda: Cron("61 * * * *"), "invalid cron expression"),
    (lambda: Cron("0 0 30 2 *"), "no slot in the next 10 years"),
    # Drawn anew at each call: an hourly "R * * * *" ran 87 times an hour.
    (lambda: Cron("R * * * *"), "random"),
    (lambda: Cron("0 r(0-5) * * *"), "random"),
    (lambda: Cron("R/10 * * * *"), "random"),
    (lambda: Cron("H * * * *"), "invalid|random"),
    (lambda: Interval(timedelta(days=999_999_999)), "no slot after now"),
    (lambda: Cron("* * * * *", "Mars/Olympus"), "unknown timezone"),
    # zoneinfo would recurse through a part per "/" (RecursionError), or
    # fail on a name too long for a file (OSError).
    (lambda: Cron("* * * * *", "a/" * 600 + "b"), "unknown timezone"),
    (lambda: Cron("* * * * *", "Etc/GMT+0" * 1000), "unknown timezone"),
    (lambda: Cron("* * * * *", "a" * 5000), "unknown timezone"),
    (lambda: Cron("* * * * *", "../../etc/passwd"), "unknown timezone"),
    (lambda: Interval(timedelta(0)), "positive timedelta"),
    (lambda: Interval(timedelta(seconds=1), datetime(2026, 1, 1)), "timezone-aware"),
    (lambda: Schedule("s", "no.such.module:f", Cron("* * * * *")), "cannot import"),
    (lambda: Schedule("s", lambda: 1, Cron("* * * * *")), "not a module-level callable"),
    (lambda: every(1, misfire="sometimes"), "misfire must be one of"),
    (lambda: every(1, retry_policy="nonsense"), "unknown retry policy"),
    (lambda: Schedule("", COUNTED, Cron("* * * * *")), "non-empty name"),
])
def test_bad_declarations_fail_at_once(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- queuing slots ----------------------------------------------------------------


@pytest.fixture
def install(queues, conn, clock):
    clock.set(T0)

    def install_(schedule):
        record = schedules.install(conn, schedule)
        conn.transaction_manager.commit()
        return record

    return install_


def queue_now(conn):
    upcoming = schedules.queue_due_slots(conn)
    conn.transaction_manager.commit()
    return upcoming


def test_a_due_slot_queues_one_job_once(install, conn, queue, clock):
    record = install(every(60))
    assert queue_now(conn) == T0 + timedelta(minutes=1)
    assert len(queue) == 0
    clock.advance(seconds=60, microseconds=5)
    assert queue_now(conn) == T0 + timedelta(minutes=2)
    assert queue_now(conn) == T0 + timedelta(minutes=2)
    [job] = list(queue)
    assert job.begin_after == T0 + timedelta(minutes=1)
    assert record.last_slot == T0 + timedelta(minutes=1)
    assert record.last_runs() == [(T0 + timedelta(minutes=1), job, "on time")]


def test_misfire_once_is_the_default(install, conn, queue, clock):
    record = install(every(60))
    clock.advance(minutes=10, seconds=30)
    queue_now(conn)
    [job] = list(queue)
    assert job.begin_after == T0 + timedelta(minutes=10)
    [(slot, _, note)] = record.last_runs()
    assert note == f"once for the missed slots since {T0 + timedelta(minutes=1)}"


def test_misfire_all_queues_every_missed_slot(install, conn, queue, clock):
    install(every(60, misfire=schedules.ALL))
    clock.advance(minutes=10, seconds=30)
    queue_now(conn)
    assert sorted(job.begin_after for job in queue) == [
        T0 + timedelta(minutes=n) for n in range(1, 11)]


def test_misfire_all_catches_up_over_several_transactions(install, conn, queue, clock,
                                                          monkeypatch):
    monkeypatch.setattr(schedules, "MAX_CATCH_UP", 4)
    install(every(60, misfire=schedules.ALL))
    clock.advance(minutes=10, seconds=30)
    assert queue_now(conn) == T0 + timedelta(minutes=5)  # due: the next call goes on
    assert len(queue) == 4
    queue_now(conn)
    queue_now(conn)
    assert len(queue) == 10


def test_misfire_skip_drops_missed_slots_and_keeps_on_time_ones(install, conn, queue, clock):
    record = install(every(1, misfire=schedules.SKIP, misfire_grace=timedelta(seconds=3)))
    clock.advance(seconds=10, microseconds=500_000)
    queue_now(conn)
    # Slots 1-7 are more than 3 s late; 8, 9 and 10 are within the grace.
    assert sorted(job.begin_after for job in queue) == [
        T0 + timedelta(seconds=n) for n in (8, 9, 10)]
    assert record.last_slot == T0 + timedelta(seconds=10)


def test_misfire_skip_may_queue_nothing(install, conn, queue, clock):
    record = install(every(60, misfire=schedules.SKIP))
    clock.advance(minutes=10, seconds=30)
    assert queue_now(conn) == T0 + timedelta(minutes=11)
    assert len(queue) == 0
    assert record.last_slot == T0 + timedelta(minutes=10)


def test_misfire_skip_of_the_last_slot_queues_nothing(install, conn, queue, clock):
    last = datetime(2030, 1, 1, tzinfo=UTC)
    record = install(Schedule("s", COUNTED, Cron("0 0 1 1 * 0 2030"), misfire=schedules.SKIP))
    clock.set(last + timedelta(minutes=1))
    assert queue_now(conn) is None
    assert len(queue) == 0 and record.last_runs() == [] and record.last_slot == last


def test_paused_schedules_queue_nothing_and_resume_without_catching_up(install, conn, queue,
                                                                       clock):
    record = install(every(60))
    record.pause()
    conn.transaction_manager.commit()
    clock.advance(minutes=5, seconds=30)
    assert queue_now(conn) is None
    record.resume(clock.now)
    conn.transaction_manager.commit()
    assert queue_now(conn) == T0 + timedelta(minutes=6)
    assert len(queue) == 0


def test_disabled_schedules_queue_nothing(install, conn, queue, clock):
    install(every(60, enabled=False))
    clock.advance(minutes=5)
    assert queue_now(conn) is None
    assert len(queue) == 0


@pytest.mark.parametrize("misfire", schedules.MISFIRE_POLICIES)
def test_enabled_again_schedules_start_from_then(install, conn, queue, clock, misfire):
    # As after a pause: the slots of the time it was off are dropped, not
    # misfired (with "all", a day off queued 1,440 jobs).
    install(every(60, enabled=False, misfire=misfire))
    clock.advance(days=1, seconds=30)
    record = install(every(60, misfire=misfire))
    assert queue_now(conn) == clock.now + timedelta(seconds=30)
    assert len(queue) == 0 and record.last_runs() == []
    clock.advance(seconds=30)
    queue_now(conn)
    assert [job.begin_after for job in queue] == [clock.now]


@pytest.mark.parametrize("misfire", schedules.MISFIRE_POLICIES)
def test_a_misfire_grace_below_what_a_slot_takes_to_queue_counts_as_that(
        install, conn, queue, clock, misfire):
    # A slot is queued a little after its time: with a grace of 0, "skip"
    # queued nothing ever and "once" noted every run late.
    record = install(every(1, misfire=misfire, misfire_grace=timedelta(0)))
    clock.advance(seconds=1, milliseconds=50)
    queue_now(conn)
    assert [job.begin_after for job in queue] == [T0 + timedelta(seconds=1)]
    assert [note for _, _, note in record.last_runs()] == ["on time"]


def test_a_new_trigger_counts_slots_from_its_installation(install, conn, queue, clock):
    record = install(every(60))
    clock.advance(minutes=30, seconds=10)
    install(every(3600))
    assert record.schedule.trigger == Interval(timedelta(hours=1))
    assert queue_now(conn) == T0 + timedelta(hours=1)
    assert len(queue) == 0
    install(every(3600, queue="other"))  # the same trigger: the state stays
    assert record.since == T0 + timedelta(minutes=30, seconds=10)


def test_a_job_that_cannot_be_queued_is_recorded_not_retried(install, conn, queue, clock):
    record = install(every(60, queue="missing"))
    clock.advance(minutes=1)
    assert queue_now(conn) == T0 + timedelta(minutes=2)
    [(slot, job, note)] = record.last_runs()
    assert job is None and note == "not queued: LookupError: no queue 'missing'"


def test_stored_triggers_without_slots_stop_no_other_schedule(install, conn, queue, clock):
    """February 30, and an interval whose next slot is past the year 9999,
    stored before triggers were checked: they have no next slot."""
    never = [install(Schedule(name, COUNTED, trigger, args=(name,))) for name, trigger in (
        ("february-30", stored(Cron("* * * * *"), expression="0 0 30 2 *")),
        ("beyond-9999", stored(Interval(timedelta(days=1)), every=timedelta(days=999_999_999))),
    )]
    install(every(60))
    clock.advance(minutes=1)
    assert queue_now(conn) == T0 + timedelta(minutes=2)
    assert [job.begin_after for job in queue] == [T0 + timedelta(minutes=1)]
    assert [(record.next_slot(), record.last_runs()) for record in never] == [(None, [])] * 2


def test_a_schedule_whose_slots_fail_is_recorded_once_and_stops_no_other(install, conn, queue,
                                                                         clock, caplog):
    # A time zone gone from the system's database since the trigger was stored.
    lost = install(Schedule("lost", COUNTED, stored(Cron("* * * * *"), timezone="Mars/Olympus")))
    install(every(60))
    clock.advance(minutes=1)
    assert queue_now(conn) == T0 + timedelta(minutes=2)
    clock.advance(minutes=1)
    assert queue_now(conn) == T0 + timedelta(minutes=3)
    assert len(queue) == 2
    [(slot, job, note)] = lost.last_runs()
    assert (slot, job) == (T0 + timedelta(minutes=1), None)
    assert note == "not queued: ValueError: unknown timezone 'Mars/Olympus'"
    assert caplog.text.count("schedule 'lost'") == 1


def test_a_renamed_schedule_keeps_its_state(install, conn, queue, clock):
    record = install(every(60))
    clock.advance(seconds=61)
    queue_now(conn)
    record.pause()
    found = schedules.find(conn)
    install(dataclasses.replace(every(60), name="other"))
    with pytest.raises(ValueError, match="'other' exists already"):
        found.rename("s", dataclasses.replace(every(60), name="other"))
    with pytest.raises(KeyError):
        found.rename("missing", dataclasses.replace(every(60), name="new"))
    assert found.rename("s", dataclasses.replace(every(60), name="new")) is record
    assert sorted(found.keys()) == ["new", "other"] and record.name == "new"
    assert record.paused and record.last_slot == T0 + timedelta(minutes=1)


def test_run_now_queues_a_job_outside_the_slots(install, conn, queue, clock):
    record = install(every(60))
    job = record.run_now(configure.get_queues(conn), clock.now)
    conn.transaction_manager.commit()
    assert list(queue) == [job]
    assert record.last_slot is None
    assert record.last_runs() == [(T0, job, "run now")]


def test_runs_keep_the_latest(install, conn, queue, clock, monkeypatch):
    monkeypatch.setattr(schedules, "RUNS_KEPT", 3)
    record = install(every(60, misfire=schedules.ALL))
    clock.advance(minutes=5)
    queue_now(conn)
    assert [slot for slot, _, _ in record.last_runs()] == [
        T0 + timedelta(minutes=n) for n in (5, 4, 3)]


def test_two_workers_racing_for_a_slot_one_conflicts_one_job(install, connect, conn, queue,
                                                             clock):
    install(every(60))
    clock.advance(minutes=1)
    first, second = connect(), connect()
    for connection in (first, second):
        connection.transaction_manager.begin()
        schedules.queue_due_slots(connection)
    first.transaction_manager.commit()
    with pytest.raises(ConflictError):
        second.transaction_manager.commit()
    second.transaction_manager.abort()
    # The loser's retry finds the slot taken.
    queue_now(second)
    conn.sync()
    assert len(queue) == 1


# -- dispatchers --------------------------------------------------------------------


def test_dispatchers_queue_slots_on_time_between_polls(queues, db, conn, start_dispatcher):
    """A one-second schedule runs every second though the poll is every minute:
    the slot timer, not the poll, serves it."""
    schedules.install(conn, Schedule("tick", COUNTED, Interval(timedelta(seconds=1)),
                                     args=("tick",)))
    conn.transaction_manager.commit()
    start_dispatcher(poll_interval=60)
    wait_until(lambda: jobs.calls["tick"] >= 3, seconds=20)


def test_a_broken_schedule_stops_no_other_in_the_dispatchers(queues, db, conn,
                                                              start_dispatcher):
    for name, trigger in (("february-30", stored(Cron("* * * * *"), expression="0 0 30 2 *")),
                          ("lost", stored(Cron("* * * * *"), timezone="Mars/Olympus")),
                          ("tick", Interval(timedelta(seconds=1)))):
        schedules.install(conn, Schedule(name, COUNTED, trigger, args=(name,)))
    conn.transaction_manager.commit()
    start_dispatcher(poll_interval=60)
    wait_until(lambda: jobs.calls["tick"] >= 2, seconds=20)
