"""Helpers for BTrees: walking them backwards, reading them as current.

``reversed(tree.items(...))`` needs the length of the range, which reads
every bucket in it.  :func:`descending` asks the tree for one key at a
time instead (``maxKey``), so each step reads one path from the root: the
first page of a listing in reverse order costs about as much as in order.

A transaction that decides something from everything a tree holds (say,
the jobs the agents hold) needs the whole tree unchanged when it commits;
``Connection.readCurrent`` checks one object, and a tree is many:
:func:`read_as_current` checks them all.
"""


def descending(tree, below=None, above=None):
    """``(key, value)`` pairs with ``above < key < below``, largest first.

    Keys must be tuples of integers (so that the largest key below
    ``(a, b)`` is the largest key at most ``(a, b - 1)``); ``None`` bounds
    leave that side open.
    """
    while True:
        try:
            key = tree.maxKey() if below is None else tree.maxKey(below[:-1] + (below[-1] - 1,))
        except ValueError:  # no key at all, or none below
            return
        if above is not None and key <= above:
            return
        yield key, tree[key]
        below = key


def read_as_current(tree):
    """Make the current transaction of ``tree``'s connection conflict
    with any commit that changed ``tree`` since the transaction read it.

    Every record of the tree is checked: its root, and the inner nodes
    and buckets of a tree too large to be kept in one record.  Nothing is
    done for a tree that is not stored yet.
    """
    jar = tree._p_jar
    if jar is None:
        return
    state = tree.__getstate__()  # loads the tree: a ghost's serial is unknown
    jar.readCurrent(tree)
    if state is None or len(state) == 1:
        return  # empty, or a single bucket stored in the tree's own record
    for child in state[0][::2]:
        if isinstance(child, tree._bucket_type):
            child._p_activate()
            jar.readCurrent(child)
        else:  # an inner node, of the tree's own class
            read_as_current(child)
