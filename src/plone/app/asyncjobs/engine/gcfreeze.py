"""Short pauses of the garbage collector in worker processes.

CPython's cyclic garbage collector stops every thread of its process while
it runs, and a full collection goes over every object it tracks.  On this
project's 2-core test machine, the 50,000 objects of an engine worker take
16-25 ms; a Plone process holds many times more.  A claim or a job start
that meets a full collection waits for it: it was the whole tail of the
pickup latency over ZEO.

:func:`freeze_start_up` collects once, then moves every object left
(modules, configuration, what start-up cached) to the collector's
permanent generation (:func:`gc.freeze`), which later collections skip.
Those objects are still freed by reference counting when no longer used;
only reference cycles among them, which start-up rarely leaves behind, are
kept until the process ends.
"""
import gc


def freeze_start_up():
    """Collect, then exempt every object left from later collections;
    return how many objects are exempt (see the module documentation).

    Call it in a worker process once it has loaded what it keeps (its
    code, configuration and dispatcher): a second call exempts what came
    since as well.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
