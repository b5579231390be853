"""Small helpers shared by the engine tests (import by absolute name)."""
import random


#: The storages a test can ask the ``db`` fixture for, with
#: ``@pytest.mark.parametrize("db", STORAGES, indirect=True)``.
STORAGES = ("FileStorage", "ZEO", "RelStorage")


def commit(obj):
    """Commit the transaction of the connection ``obj`` is stored in."""
    obj._p_jar.transaction_manager.commit()


def sync(obj):
    """See what other connections committed (begin a new transaction)."""
    obj._p_jar.transaction_manager.begin()


def claim_one_per_lane(queue, clock, make_job, count=256, **options):
    """Put ``make_job(number)`` for ``number`` in ``range(count)``, each due a
    second after the previous one, with ``options``, each in a transaction
    of its own (so that they spread over the lanes); claim one job
    from each lane in turn; return the numbers in claim order.  The
    default count makes lanes much longer than a claim window, as due
    order is only kept then.  Claim windows are random: seeded here."""
    state = random.getstate()
    random.seed(20260101)
    try:
        for number in range(count):
            queue.put(make_job(number), **options)
            commit(queue)
            clock.advance(seconds=1)
        claimed = [queue.claim(lane=number) for number in range(count)]
    finally:
        random.setstate(state)
    return [job.args[0] for job in claimed]
