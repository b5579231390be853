"""Small helpers shared by the engine tests (import by absolute name)."""


def commit(obj):
    """Commit the transaction of the connection ``obj`` is stored in."""
    obj._p_jar.transaction_manager.commit()


def sync(obj):
    """See what other connections committed (begin a new transaction)."""
    obj._p_jar.transaction_manager.begin()

