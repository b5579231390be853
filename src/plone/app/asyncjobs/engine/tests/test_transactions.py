"""The engine's commit loops retry what ``transaction`` would retry."""
import pytest
import transaction
from ZODB.POSException import ConflictError
from ZODB.POSException import TransactionError

from plone.app.asyncjobs.engine import transactions


class Failing:
    """Work that raises each of ``errors`` in turn, then returns "done"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Busy(Exception):
    """An error that only a data manager knows to be worth a retry."""


class DataManager:
    """Joins the transaction and declares :class:`Busy` retryable."""

    transaction_manager = None

    def should_retry(self, error):
        return isinstance(error, Busy)

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_vote = tpc_finish = tpc_abort = abort

    def sortKey(self):
        return "test-data-manager"


def test_a_conflict_is_retried_after_a_short_growing_pause():
    pauses = []
    work = Failing(ConflictError(), ConflictError())
    manager = transaction.TransactionManager()
    assert transactions.retry_conflicts(work, manager, "test", sleep=pauses.append) == "done"
    assert work.calls == 3
    assert [0 <= pause <= transactions.CONFLICT_PAUSE * n
            for n, pause in enumerate(pauses, 1)] == [True, True]


def test_an_error_transaction_would_not_retry_is_not_a_conflict():
    # TransactionError is not transient: transaction's own attempts give up.
    work = Failing(TransactionError("doomed"))
    with pytest.raises(TransactionError):
        transactions.retry_conflicts(work, transaction.TransactionManager(), "test",
                                     sleep=pytest.fail)
    assert work.calls == 1


def test_an_error_a_data_manager_declares_retryable_is_a_conflict():
    manager = transaction.TransactionManager()
    pauses = []

    def work(failing=Failing(Busy())):
        manager.get().join(DataManager())
        return failing()

    assert transactions.retry_forever(work, manager, "test", sleep=pauses.append) == "done"
    assert len(pauses) == 1 and pauses[0] <= transactions.MAX_CONFLICT_PAUSE
    assert transactions.conflicts[transactions.BOOKKEEPING] >= 1
