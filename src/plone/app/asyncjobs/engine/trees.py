"""Walking BTrees keyed by tuples of integers backwards, cheaply.

``reversed(tree.items(...))`` needs the length of the range, which reads
every bucket in it.  :func:`descending` asks the tree for one key at a
time instead (``maxKey``), so each step reads one path from the root: the
first page of a listing in reverse order costs about as much as in order.
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
