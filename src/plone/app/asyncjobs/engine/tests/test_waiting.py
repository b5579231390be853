"""The waiting helpers for dispatcher records, against a real database."""
import threading
from datetime import timedelta

import pytest

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine.testing.waiting import wait_for_death
from plone.app.asyncjobs.engine.testing.waiting import wait_for_deactivation


def test_wait_for_deactivation_sees_a_commit_of_another_connection(record, connect):
    watched = record()
    other = connect()
    seen_there = configure.get_queue(other).dispatchers[watched.UUID]

    def deactivate():
        seen_there.deactivate()
        other.transaction_manager.commit()

    threading.Timer(0.1, deactivate).start()
    wait_for_deactivation(watched, seconds=10)
    assert watched.activated is None


def test_wait_for_death_returns_once_the_record_counts_as_dead(record, conn):
    watched = record()
    watched.ping_death_interval = timedelta(seconds=0.2)
    conn.transaction_manager.commit()
    wait_for_death(watched, seconds=10)
    assert watched.dead


def test_waiting_helpers_time_out_with_a_description(record):
    watched = record()
    with pytest.raises(AssertionError, match="to be deactivated"):
        wait_for_deactivation(watched, seconds=0.2)
