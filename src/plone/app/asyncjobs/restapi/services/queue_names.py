"""How the API writes queue names in paths and query strings.

The default queue is named ``""``, which a path segment cannot carry and
an empty query parameter would not make clear: there it is written
:data:`DEFAULT`.  JSON replies give the real name.
"""
DEFAULT = "_default_"


def as_segment(name):
    """The path segment or parameter value for the queue ``name``."""
    return name or DEFAULT


def from_segment(segment):
    """The queue name that :func:`as_segment` wrote as ``segment``."""
    return "" if segment == DEFAULT else segment
