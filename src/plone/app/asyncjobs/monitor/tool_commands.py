"""What the ``async`` and ``asyncdb`` commands share: tools, arguments, JSON.

Both commands are made of *tools*, named by their first argument::

    async TOOL [POSITIONAL...] [NAME:VALUE...]

Positional arguments come first; every word holding a colon is a named
argument, split at its first colon (``queue:`` gives the empty value, which
is the name of the default queue).  A tool refuses arguments it does not
know, a name given twice and a positional argument after a named one, with
a `CommandError` saying so.  ``COMMAND help`` (or the command alone) lists
the tools; ``COMMAND help TOOL`` describes one.

Output is JSON (keys sorted, indented by four spaces), encoded by
`to_json`:

* durations (timedelta): ``{"days", "hours", "minutes", "seconds"}`` with
  only the non-zero parts (``{"seconds": 0.0}`` for none); the days, hours
  and minutes are integers, the seconds a float; all parts of a negative
  duration are negative;
* times: ISO 8601 in UTC with a trailing ``Z``,
  ``2026-01-31T12:00:00.000000Z``;
* jobs and other stored objects: ``[oid, database name]``, the job id the
  commands accept;
* UUIDs: strings; callables: their dotted name; anything else: its repr
  (``<unrepresentable CLASS: ERROR>`` if that raises).
"""

import fnmatch
import inspect
import json
import re
import sys
import types
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

from persistent import Persistent

from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.naming import brief_repr
from plone.app.asyncjobs.engine.naming import dotted_name

from .interfaces import CommandError


# -- output -------------------------------------------------------------------


class PlainText(str):
    """Tool output to send as it is, not as JSON (help texts)."""


def to_json(value):
    """Return `value` as the commands' JSON text, ending with a newline."""
    return json.dumps(value, sort_keys=True, indent=4, default=_encode) + "\n"


def encode_timedelta(delta):
    """Return the JSON form of a duration (see the module docstring)."""
    sign = -1 if delta < timedelta(0) else 1
    delta = abs(delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = {
        "days": delta.days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds + delta.microseconds / 1_000_000,
    }
    encoded = {name: sign * value for name, value in parts.items() if value}
    if "seconds" in encoded:
        encoded["seconds"] = float(encoded["seconds"])
    return encoded or {"seconds": 0.0}


def encode_datetime(moment):
    """Return `moment` in ISO 8601, UTC, with a trailing Z (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _encode(value):
    if isinstance(value, timedelta):
        return encode_timedelta(value)
    if isinstance(value, datetime):
        return encode_datetime(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Persistent):
        return list(object_id(value))
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (types.GeneratorType, map, filter, zip)):
        return list(value)
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType,
                          types.MethodType, type)):
        return dotted_name(value)
    return brief_repr(value)


# -- tools ----------------------------------------------------------------------


class Tool:
    """One tool of a command: its function and the arguments it takes.

    `positional` names the required positional arguments, `optional` the
    optional ones after them, `repeated` (if not None) the name of any
    number of further ones; `named` lists ``"name:PLACEHOLDER"`` strings.
    """

    def __init__(self, function, name, positional, optional, repeated, named):
        self.function = function
        self.name = name
        self.positional = tuple(positional)
        self.optional = tuple(optional)
        self.repeated = repeated
        self.named = dict(item.split(":", 1) for item in named)

    @property
    def description(self):
        return inspect.cleandoc(self.function.__doc__ or "") or "(no description)"

    @property
    def summary(self):
        return self.description.splitlines()[0]

    def usage(self, command):
        words = [command, self.name, *self.positional]
        words += [f"[{name}]" for name in self.optional]
        if self.repeated:
            words.append(f"[{self.repeated}...]")
        words += [f"[{name}:{value}]" for name, value in self.named.items()]
        return " ".join(words)

    def parse(self, command, words):
        """Return the `Arguments` that `words` give this tool."""
        label = f"{command} {self.name}"
        positional = []
        named = {}
        for word in words:
            name, colon, value = word.partition(":")
            if not colon:
                if named:
                    raise CommandError(
                        f"{label}: the argument {word!r} must come before the "
                        f"name:value arguments"
                    )
                positional.append(word)
            elif name not in self.named:
                accepted = ", ".join(f"{n}:" for n in self.named) or "none"
                raise CommandError(
                    f"{label}: unknown argument {name + ':'!r} (named "
                    f"arguments: {accepted})"
                )
            elif name in named:
                raise CommandError(f"{label}: {name}: is given twice")
            else:
                named[name] = value
        if len(positional) < len(self.positional):
            missing = " ".join(self.positional[len(positional):])
            raise CommandError(
                f"{label}: {missing} missing (usage: {self.usage(command)})"
            )
        fixed = len(self.positional) + len(self.optional)
        if len(positional) > fixed and self.repeated is None:
            raise CommandError(
                f"{label}: unexpected argument {positional[fixed]!r} "
                f"(usage: {self.usage(command)})"
            )
        values = dict(zip(self.positional + self.optional, positional))
        return Arguments(label, values, positional[fixed:], named)


class Arguments:
    """The arguments a tool was given, already checked against its `Tool`.

    `values` maps positional argument names to the words given, `rest`
    holds the repeated ones, `named` the name:value ones.
    """

    def __init__(self, label, values, rest, named):
        self.label = label
        self.values = values
        self.rest = rest
        self.named = named

    def get(self, name, default=None):
        """A positional or named argument's word, or `default`."""
        return self.values.get(name, self.named.get(name, default))

    def error(self, message):
        """A `CommandError` about this tool's arguments."""
        return CommandError(f"{self.label}: {message}")


def tool(name=None, positional=(), optional=(), repeated=None, named=()):
    """Mark a method of a `ToolCommand` subclass as one of its tools.

    The method gets the `Arguments` and returns the value to write as JSON
    (or a `PlainText`).  Its docstring is the tool's help.
    """
    def mark(function):
        function.monitor_tool = Tool(
            function, name or function.__name__, positional, optional,
            repeated, named,
        )
        return function
    return mark


class ToolCommand:
    """A monitor plugin whose first argument names one of its tools.

    Subclasses set `command_name` and define tools with `tool`.
    """

    command_name = None
    tools = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        tools = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "monitor_tool", None)
                if spec is not None:
                    tools[spec.name] = spec
        cls.tools = tools

    def __call__(self, connection, *words):
        if not words:
            words = ("help",)
        name, *rest = words
        spec = self.tools.get(name)
        if spec is None:
            raise CommandError(
                f"Unknown tool {name!r} for {self.command_name} (tools: "
                f"{', '.join(sorted(self.tools, key=str.lower))}); try "
                f'"{self.command_name} help"'
            )
        result = spec.function(self, spec.parse(self.command_name, rest))
        if isinstance(result, PlainText):
            connection.write(result if result.endswith("\n") else result + "\n")
        else:
            connection.write(to_json(result))

    @tool(optional=("TOOL",))
    def help(self, arguments):
        """List the tools, or describe one (with its arguments).

        Without TOOL, every tool with the first line of its description.
        """
        name = arguments.get("TOOL")
        command = self.command_name
        if name is None:
            lines = [f"Tools of {command} (\"{command} help TOOL\" describes one):"]
            lines += [
                f"  {spec.name} -- {spec.summary}"
                for spec in sorted(self.tools.values(), key=lambda s: s.name.lower())
            ]
            return PlainText("\n".join(lines))
        spec = self.tools.get(name)
        if spec is None:
            raise arguments.error(f"no tool named {name!r}")
        return PlainText(f"Usage: {spec.usage(command)}\n\n{spec.description}")


# -- argument values --------------------------------------------------------------


_INTERVAL = re.compile(
    r"(?:(?P<days>\d+)d)?(?:(?P<hours>\d+)h)?(?:(?P<minutes>\d+)m)?"
    r"(?:(?P<seconds>\d+(?:\.\d*)?)s)?",
    re.IGNORECASE,
)

INTERVAL_HELP = "an interval like 1h30m (units d, h, m, s, in that order)"

#: The largest count or poll key an argument may give: `itertools.islice`
#: takes no larger count, and poll keys, counting polls from 1, never get
#: that far.
MAX_INTEGER = sys.maxsize

#: The longest interval an argument may name: longer ones reach before the
#: first year a datetime can hold.
MAX_INTERVAL = timedelta(days=36500)


def parse_interval(text, label):
    """``[nD][nH][nM][nS]`` (any case) as a timedelta; `CommandError` if not."""
    match = _INTERVAL.fullmatch(text)
    if not text or match is None:
        raise CommandError(f"{label} {text!r} is not {INTERVAL_HELP}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    try:
        interval = timedelta(**parts)
    except OverflowError:
        interval = None
    if interval is None or interval > MAX_INTERVAL:
        raise CommandError(f"{label} {text!r} is longer than {MAX_INTERVAL.days} days")
    return interval


def parse_poll_point(text, label):
    """A poll key (`int`) or an interval ago (`timedelta`)."""
    if text.isascii() and text.isdigit():
        key = _bounded_decimal(text, MAX_INTEGER)
        if key is None:
            raise CommandError(f"{label} {text!r} is larger than any poll key")
        return key
    if not _INTERVAL.fullmatch(text) or not text:
        raise CommandError(
            f"{label} {text!r} is neither a poll key (an integer) nor "
            f"{INTERVAL_HELP}"
        )
    return parse_interval(text, label)


def parse_count(text, label):
    """A positive integer up to `MAX_INTEGER`."""
    if not (text.isascii() and text.isdigit() and text.lstrip("0")):
        raise CommandError(f"{label} {text!r} is not a positive integer")
    count = _bounded_decimal(text, MAX_INTEGER)
    if count is None:
        raise CommandError(f"{label} {text!r} is larger than {MAX_INTEGER}")
    return count


def _bounded_decimal(text, limit):
    """`text`, ASCII decimal digits, as an `int`; None if over `limit`.

    Too many digits are refused before `int` reads them: it raises
    `ValueError` beyond 4300.
    """
    digits = text.lstrip("0")
    if len(digits) > len(str(limit)):
        return None
    value = int(digits or "0")
    return value if value <= limit else None


def parse_oid(text, label):
    """A job's oid: a non-negative integer (decimal, or hex with 0x)."""
    try:
        oid = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        oid = -1
    if oid < 0:
        raise CommandError(f"{label} {text!r} is not an oid (an integer)")
    if oid >= 2 ** 64:  # ZODB oids are 8 bytes
        raise CommandError(f"{label} {text!r} is larger than any oid")
    return oid


def parse_uuid(text, label):
    """A UUID in any form `uuid.UUID` reads."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CommandError(f"{label} {text!r} is not a UUID") from None


def glob_matches(pattern, name):
    """Whether `name` matches the shell-style `pattern` (case-sensitive)."""
    return fnmatch.fnmatchcase(name, pattern)
