"""A line-oriented monitor server on a Twisted reactor chosen by the caller.

Protocol
--------

A client connects (TCP or Unix socket) and sends a command line: a command
word and its arguments, separated by whitespace, ended by a newline (a
carriage return before it is ignored; there is no quoting).  The server runs
the command, sends its output and closes the connection.  Blank lines before
the command are ignored.  So ``echo 'monitor' | nc localhost 8081`` works as
it did with zc.monitor.  A command line longer than 16384 bytes
(``MonitorSession.MAX_LENGTH``) gets a one-line error, and the connection
is closed.

The command ``interactive`` keeps the connection open: the server then
answers every command line until ``quit`` (which answers ``Goodbye.`` and
closes) or until the client disconnects.  In interactive mode

* the output of every command, ``interactive`` itself included, is followed
  by the line ``-->`` (`OUTPUT_END_MARKER`) alone, so a script reads up to
  that line to obtain exactly one command's output (zc.monitor had no such
  delimiter); for a person at a terminal the line serves as a prompt;
* an empty line repeats the previous command, as in zc.monitor.

A connection's commands run one at a time, in the order received.  A client
that half-closes its side (``nc -N`` at the end of its input) gets the
answers to every command it sent, the last one even without its newline,
before the server closes.

Commands
--------

``help``, ``interactive`` and ``quit`` are built into the server.  Every
other command is a plugin (see `.interfaces.IMonitorPlugin`).  An unknown
command, or arguments that do not fit the command's signature, get a one-line
message.  A plugin runs in a thread of the reactor's thread pool, so a slow
command never blocks the reactor; its output travels back through the
reactor.  A plugin that raises gets a one-line ``Error: ...`` and, unless
it raised `.interfaces.CommandError`, its traceback is logged on the server
(logger ``plone.app.asyncjobs.monitor``); the connection carries on.

Reactors
--------

Nothing here touches the global ``twisted.internet.reactor``: `start_server`
serves on the reactor it is given, and `MonitorThread` makes a private one.
`start_server` and `stop_server` must be called in the reactor's thread (or
before the reactor runs); from another thread, go through
`twisted.internet.threads.blockingCallFromThread`.
"""

import errno
import inspect
import ipaddress
import logging
import os
import socket
import stat
import threading

import zope.component
from twisted.internet.address import UNIXAddress
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.internet.threads import blockingCallFromThread
from twisted.internet.threads import deferToThreadPool
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from plone.app.asyncjobs.engine.reactor import private_reactor

from .interfaces import CommandError
from .interfaces import IMonitorConnection
from .interfaces import IMonitorPlugin


logger = logging.getLogger("plone.app.asyncjobs.monitor")

#: The host a bare port number binds to: the monitor has no authentication.
LOOPBACK_HOST = "127.0.0.1"

#: The line that ends each command's output in interactive mode.
OUTPUT_END_MARKER = "-->"

#: Permissions of a Unix socket file: only the process owner may connect.
UNIX_SOCKET_MODE = 0o600


# -- addresses --------------------------------------------------------------


def parse_address(address):
    """Return the monitor address `address` in the form `start_server` binds.

    Accepted forms, as `int` or `str`:

    * a port number, ``8081``: TCP on 127.0.0.1 only;
    * ``host:port``: TCP on that interface; an IPv6 host goes in brackets,
      ``[::1]:8081``; an empty host, ``:8081``, means every interface;
    * an absolute path, ``/var/run/monitor.sock``: a Unix socket.

    Port 0 asks the system for a free port.  The result is a ``(host,
    port)`` tuple for TCP or the path (`str`) for a Unix socket; such a
    result is accepted again unchanged.  Anything else raises `ValueError`
    with a message saying what is wrong.
    """
    if isinstance(address, tuple):
        host, port = address
        return (host, _port_number(str(port), address))
    text = str(address).strip()
    if text.startswith("/"):
        return text
    if _is_decimal(text):
        return (LOOPBACK_HOST, _port_number(text, address))
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(
            f"Invalid monitor address {address!r}: expected a port number, "
            f"'host:port' or an absolute Unix socket path"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(
            f"Invalid monitor address {address!r}: put an IPv6 host in "
            f"brackets, as in '[::1]:8081'"
        )
    return (host, _port_number(port, address))


def address_from_config(section):
    """Return the address configured in ``<product-config zc.z3monitor>``.

    `section` maps keys to `str` values, as Zope's ``product_config`` holds
    them.  Two keys are understood: ``bind`` (any form `parse_address`
    accepts; the key of later zc.z3monitor releases) and ``port`` (a port
    number only; the key plone.app.async read).  Returns what
    `parse_address` returns, or None when neither key is present, meaning
    no monitor is wanted.  Both keys at once, or a malformed value, raise
    `ValueError`.
    """
    bind = section.get("bind")
    port = section.get("port")
    if bind is not None and port is not None:
        raise ValueError(
            "<product-config zc.z3monitor>: give either 'port' or 'bind', "
            "not both"
        )
    if bind is not None:
        return parse_address(bind)
    if port is None:
        return None
    if not _is_decimal(port.strip()):
        raise ValueError(
            f"<product-config zc.z3monitor>: 'port' must be a port number, "
            f"got {port!r}; use 'bind' for host:port or a socket path"
        )
    return parse_address(port)


def listening_address(port):
    """Return the address the listening `port` is bound to.

    The result has the form `parse_address` returns; for a server started
    on port 0 it holds the port actually chosen.
    """
    bound = port.getHost()
    if isinstance(bound, UNIXAddress):
        return os.fsdecode(bound.name)
    return (bound.host, bound.port)


def _is_decimal(text):
    return text.isascii() and text.isdigit()


def _port_number(text, address):
    if not (_is_decimal(text) and int(text) <= 65535):
        raise ValueError(
            f"Invalid monitor address {address!r}: the port must be a number "
            f"from 0 to 65535"
        )
    return int(text)


def _describe(address):
    """Spell a parsed address the way `parse_address` reads it."""
    if isinstance(address, str):
        return address
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name or "" (every interface)
        return False


# -- starting and stopping ----------------------------------------------------


def start_server(reactor, address, plugins=None):
    """Serve the monitor protocol on `address` with `reactor`.

    `address` is anything `parse_address` accepts.  `plugins` maps command
    names to plugins; by default the named utilities providing
    `IMonitorPlugin` are looked up each time a command arrives, so
    registrations made later (ZCML of add-ons) count.  A mapping passed in
    is likewise read at each command, so commands may be added to it.

    Returns the listening port (a Twisted ``IListeningPort``).  If the
    address is already in use, logs a warning and returns None instead:
    a second process started from the same configuration (a debug console,
    say) must not die for want of a monitor.  Other failures to listen
    raise `twisted.internet.error.CannotListenError`; a malformed address
    raises `ValueError`.  Listening on an interface other than loopback
    logs a warning, since the protocol has no authentication.

    A stale Unix socket file, left by a process that died, is replaced;
    one that a live process listens on counts as in use.  The socket file
    is made accessible to its owner only.
    """
    where = parse_address(address)
    lookup = _registered_plugins if plugins is None else lambda: plugins
    factory = MonitorFactory(reactor, lookup)
    try:
        port = _listen(reactor, where, factory)
    except CannotListenError as error:
        if getattr(error.socketError, "errno", None) != errno.EADDRINUSE:
            raise
        port = None
    if port is None:
        logger.warning(
            "Monitor server not started: %s is already in use", _describe(where)
        )
        return None
    bound = listening_address(port)
    if isinstance(bound, tuple) and not _is_loopback(bound[0]):
        logger.warning(
            "Monitor server listens on %s, which other hosts can reach; it "
            "has no authentication, so make sure a firewall blocks the port",
            _describe(bound),
        )
    logger.info("Monitor server listening on %s", _describe(bound))
    return port


def stop_server(port):
    """Stop the monitor server listening on `port`, from `start_server`.

    Closes the listening socket (removing a Unix socket file) and the
    connections of its clients.  A plugin still running finishes in its
    thread; what it writes is discarded.  Returns a Deferred that fires once
    the listening socket is closed.
    """
    for session in list(port.factory.sessions):
        session.transport.loseConnection()
    return port.stopListening()


def _listen(reactor, where, factory):
    """Listen on `where`; return the port, or None if a server has it."""
    if isinstance(where, str):
        if _unix_socket_in_use(where):
            # Checked here because Twisted, failing to bind a Unix socket,
            # leaks the socket it made.
            return None
        return reactor.listenUNIX(where, factory, mode=UNIX_SOCKET_MODE)
    host, port = where
    return reactor.listenTCP(port, factory, interface=host)


def _unix_socket_in_use(path):
    """Tell whether a process listens on the Unix socket at `path`.

    A socket file nobody listens on, left by a process that died, is
    removed so that the path can be bound again.
    """
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return False  # nothing there, or not a socket: binding will tell
    except FileNotFoundError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
            return False
        except OSError:
            return True  # there but not answering (busy, or not ours)
    return True


def _registered_plugins():
    return dict(zope.component.getUtilitiesFor(IMonitorPlugin))


class MonitorThread:
    """A monitor server on a private reactor in a daemon thread.

    For use outside an application that already runs a reactor::

        monitor = MonitorThread(8081, plugins={"monitor": commands.monitor})
        monitor.start()     # ("127.0.0.1", 8081), or None if in use
        ...
        monitor.stop()

    `address` and `plugins` are as for `start_server`; a malformed address
    raises `ValueError` here, before any thread exists.  The reactor is
    one of this object's own (`private_reactor`; attribute `reactor`, once
    started), never the global one.
    """

    def __init__(self, address, plugins=None):
        self._address = parse_address(address)
        self._plugins = plugins
        self.reactor = None
        self.port = None
        self._thread = None

    def start(self):
        """Start the reactor thread and the server on it.

        Returns the address listened on (see `listening_address`), or None
        when the address is in use, in which case the thread is stopped
        again.  An error raised by `start_server` stops the thread too and
        propagates.  A `MonitorThread` starts only once.
        """
        if self._thread is not None:
            raise RuntimeError("a MonitorThread can be started only once")
        self.reactor = private_reactor()
        self._thread = threading.Thread(
            target=self.reactor.run,
            kwargs={"installSignalHandlers": False},
            name="plone.app.asyncjobs monitor",
            daemon=True,
        )
        self._thread.start()
        try:
            self.port = blockingCallFromThread(
                self.reactor, start_server, self.reactor, self._address,
                self._plugins,
            )
        finally:
            if self.port is None:
                self.stop()
        return None if self.port is None else listening_address(self.port)

    def stop(self, timeout=10.0):
        """Stop the server and the reactor and wait for the thread to end.

        Does nothing if the thread is not running.  Raises `RuntimeError`
        if the thread has not ended after `timeout` seconds, which happens
        when a plugin does not return: the reactor waits for its thread
        pool.
        """
        if self._thread is None or not self._thread.is_alive():
            return
        if self.port is not None:
            blockingCallFromThread(self.reactor, stop_server, self.port)
            self.port = None
        self.reactor.callFromThread(self.reactor.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(
                f"the monitor reactor thread did not stop within {timeout} s"
            )
        # A stopped reactor keeps its wake-up pipe open; nobody else can
        # use this private reactor, so close it rather than leak two
        # file descriptors.
        self.reactor.waker.connectionLost(None)


# -- the protocol -------------------------------------------------------------


class MonitorFactory(Factory):
    """Makes a `MonitorSession` per client and keeps count of them.

    `plugins` is a callable returning the current mapping of command names
    to plugins.
    """

    noisy = False  # Twisted would log each start and stop of the factory

    def __init__(self, reactor, plugins):
        self.reactor = reactor
        self.plugins = plugins
        self.sessions = set()

    def buildProtocol(self, addr):
        return MonitorSession(self)


@implementer(IHalfCloseableProtocol)
class MonitorSession(LineReceiver):
    """The conversation with one client (see the module docstring).

    All methods run in the reactor's thread.
    """

    delimiter = b"\n"

    def __init__(self, factory):
        self.factory = factory
        self.interactive = False
        self.previous_command = None
        self.client_gone = False
        self.input_ended = False
        self._output_ends_line = True

    def connectionMade(self):
        self.factory.sessions.add(self)

    def connectionLost(self, reason):
        self.client_gone = True
        self.factory.sessions.discard(self)

    def readConnectionLost(self):
        """The client half-closed: answer what it sent, then close.

        Twisted reads only while no command runs (`lineReceived` pauses
        reading), so every complete line has been answered by now; a last
        line without a newline still is a command.
        """
        self.input_ended = True
        last_line = self.clearLineBuffer()
        if last_line.strip():
            self.lineReceived(last_line)
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self):
        """Never called for a socket (see `IHalfCloseableProtocol`)."""

    def lineLengthExceeded(self, line):
        self.send(
            f"Error: a command line is limited to {self.MAX_LENGTH} bytes; "
            f"closing the connection.\n"
        )
        self.transport.loseConnection()

    def send(self, text):
        """Send `text` (`str`) to the client."""
        if text:
            self.transport.write(text.encode("utf-8"))
            self._output_ends_line = text.endswith("\n")

    def end_line(self):
        """Start a new line unless the output sent so far ended one."""
        if not self._output_ends_line:
            self.send("\n")

    def lineReceived(self, line):
        words = line.decode("utf-8", "replace").split()
        if not words:
            if not (self.interactive and self.previous_command):
                return
            words = self.previous_command
        self.previous_command = words
        # One command at a time: lines arriving meanwhile wait, unread, in
        # the receive buffer until `_command_done` resumes reading.
        self.pauseProducing()
        self._dispatch(words[0], words[1:])

    def _dispatch(self, name, args):
        builtin = BUILTIN_COMMANDS.get(name)
        command = builtin or self.factory.plugins().get(name)
        problem = None if command is None else _argument_problem(command, args)
        if command is None:
            self.send(_unknown_command(name))
        elif problem is not None:
            self.send(
                f"Bad arguments for {name!r}: {problem}. "
                f'Try "help {name}".\n'
            )
        elif builtin is not None:
            builtin(self, *args)
        else:
            reactor = self.factory.reactor
            finished = deferToThreadPool(
                reactor, reactor.getThreadPool(), _run_plugin, self, name,
                command, args,
            )
            finished.addCallback(self._plugin_returned)
            return
        self._command_done()

    def _plugin_returned(self, error_line):
        if self.client_gone:
            return
        if error_line is not None:
            self.end_line()
            self.send(error_line)
        self._command_done()

    def _command_done(self):
        if self.interactive:
            self.end_line()
            self.send(OUTPUT_END_MARKER + "\n")
        if self.interactive and not self.input_ended:
            self.resumeProducing()
        else:
            self.transport.loseConnection()


@implementer(IMonitorConnection)
class _PluginConnection:
    """The `IMonitorConnection` a plugin gets; used in the plugin's thread."""

    def __init__(self, session):
        self._session = session
        self.closed = False

    @property
    def open_connections(self):
        return len(self._session.factory.sessions)

    def write(self, text):
        if self.closed:
            raise RuntimeError("a monitor plugin wrote after it had returned")
        if not isinstance(text, str):
            raise TypeError(
                f"a monitor plugin must write str, not {type(text).__name__}"
            )
        self._session.factory.reactor.callFromThread(self._session.send, text)


def _run_plugin(session, name, plugin, args):
    """Run `plugin` (in a pool thread); return the error line to send, or None.

    Its writes are queued to the reactor before this returns, so they reach
    the client before anything `_plugin_returned` sends.
    """
    connection = _PluginConnection(session)
    try:
        plugin(connection, *args)
    except CommandError as error:
        return f"Error: {_one_line(error)}\n"
    except BaseException as error:  # whatever it is, the client needs an answer
        logger.exception("Monitor command %r failed", " ".join([name, *args]))
        return (
            f"Error: command {name!r} failed: {type(error).__name__}: "
            f"{_one_line(error)} (traceback in the server log)\n"
        )
    finally:
        connection.closed = True
    return None


def _argument_problem(command, args):
    """Say why `args` do not fit `command`'s signature; None if they do."""
    try:
        signature = inspect.signature(command)
    except (TypeError, ValueError):  # not introspectable: let the call decide
        return None
    try:
        signature.bind(None, *args)  # None stands for the connection
    except TypeError as error:
        return str(error)
    return None


def _one_line(error):
    return " ".join(str(error).split())


def _unknown_command(name):
    return f'Unknown command {name!r}. Try "help".\n'


def _description(command):
    return inspect.cleandoc(command.__doc__ or "") or "(no description)"


# -- built-in commands ----------------------------------------------------------


def _help(session, command_name=None):
    """List the commands, or describe one.

    Without an argument, list every command with the first line of its
    description.  With a command name, show that command's whole
    description.
    """
    commands = {**session.factory.plugins(), **BUILTIN_COMMANDS}
    if command_name is None:
        session.send(
            "Supported commands:\n"
            + "".join(
                f"  {name} -- {_description(command).splitlines()[0]}\n"
                for name, command in sorted(commands.items())
            )
        )
    elif command_name in commands:
        session.send(
            f"Help for {command_name}:\n\n{_description(commands[command_name])}\n"
        )
    else:
        session.send(_unknown_command(command_name))


def _interactive(session):
    """Keep the connection open for further commands, until "quit".

    Normally the server closes the connection after one command.  In
    interactive mode it answers command after command; after each output
    it sends the line "-->" alone, marking where that output ends.  An empty
    line repeats the previous command.
    """
    session.interactive = True
    session.send('Interactive mode on. Use "quit" to leave.\n')


def _quit(session):
    """Close the connection.

    Only useful in interactive mode (see "help interactive").
    """
    session.interactive = False
    session.send("Goodbye.\n")


BUILTIN_COMMANDS = {"help": _help, "interactive": _interactive, "quit": _quit}
