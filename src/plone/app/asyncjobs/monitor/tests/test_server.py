"""The monitor server, over real TCP and Unix-socket connections."""

import logging
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading

import pytest
import zope.component
from twisted.internet.threads import blockingCallFromThread

from plone.app.asyncjobs.monitor.interfaces import CommandError
from plone.app.asyncjobs.monitor.interfaces import IMonitorPlugin
from plone.app.asyncjobs.monitor.server import MonitorThread
from plone.app.asyncjobs.monitor.server import address_from_config
from plone.app.asyncjobs.monitor.server import parse_address
from plone.app.asyncjobs.monitor.server import start_server
from plone.app.asyncjobs.monitor.server import stop_server
from plone.app.asyncjobs.monitor.tests.client import InteractiveClient
from plone.app.asyncjobs.monitor.tests.client import ask
from plone.app.asyncjobs.monitor.tests.client import connect
from plone.app.asyncjobs.monitor.tests.client import read_to_end


LOGGER = "plone.app.asyncjobs.monitor"


def hello(connection, name="world"):
    """Greet somebody.

    Give a name unless you are the world.
    """
    connection.write(f"Hello, {name}!\n")


def boom(connection):
    """Fail after some output."""
    connection.write("partial output")
    raise RuntimeError("it broke\nbadly")


def refuse(connection, value):
    """Reject every value."""
    raise CommandError(f"{value!r} is not acceptable")


PLUGINS = {"hello": hello, "boom": boom, "refuse": refuse}


# -- one command per connection ---------------------------------------------


def test_runs_a_command_with_arguments_and_closes_the_connection(serve):
    address = serve(PLUGINS)
    assert ask(address, "hello\n") == "Hello, world!\n"
    assert ask(address, "  hello   Jim \r\n") == "Hello, Jim!\n"


def test_ignores_blank_lines_before_and_lines_after_the_command(serve):
    address = serve(PLUGINS)
    assert ask(address, "\n \nhello Ann\nhello Bob\n") == "Hello, Ann!\n"


def test_output_is_utf8(serve):
    address = serve(PLUGINS)
    assert ask(address, "hello Jürgen\n") == "Hello, Jürgen!\n"


def test_unknown_command(serve):
    address = serve(PLUGINS)
    assert ask(address, "frobnicate 1 2\n") == (
        "Unknown command 'frobnicate'. Try \"help\".\n"
    )


def test_bad_arguments_are_reported_without_calling_the_plugin(serve):
    calls = []
    address = serve({"count": lambda connection, n: calls.append(n)})
    assert ask(address, "count\n") == (
        "Bad arguments for 'count': missing a required argument: 'n'. "
        'Try "help count".\n'
    )
    assert ask(address, "count 1 2\n") == (
        "Bad arguments for 'count': too many positional arguments. "
        'Try "help count".\n'
    )
    assert calls == []


def test_a_failing_plugin_gets_an_error_line_and_a_logged_traceback(
    serve, caplog
):
    address = serve(PLUGINS)
    with caplog.at_level(logging.ERROR, LOGGER):
        output = ask(address, "boom\n")
    assert output == (
        "partial output\n"
        "Error: command 'boom' failed: RuntimeError: it broke badly "
        "(traceback in the server log)\n"
    )
    [record] = caplog.records
    assert record.name == LOGGER
    assert record.getMessage() == "Monitor command 'boom' failed"
    assert record.exc_info[0] is RuntimeError


def test_a_command_error_is_shown_and_not_logged(serve, caplog):
    address = serve(PLUGINS)
    with caplog.at_level(logging.DEBUG, LOGGER):
        assert ask(address, "refuse 42\n") == "Error: '42' is not acceptable\n"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_plugins_must_write_str_during_the_call(serve, caplog):
    kept = []

    def keep(connection):
        """Keep the connection for later."""
        kept.append(connection)

    def write_bytes(connection):
        """Write bytes."""
        connection.write(b"raw")

    address = serve({"keep": keep, "bytes": write_bytes})
    assert ask(address, "keep\n") == ""
    with pytest.raises(RuntimeError, match="after it had returned"):
        kept[0].write("too late\n")
    with caplog.at_level(logging.ERROR, LOGGER):
        assert "TypeError: a monitor plugin must write str, not bytes" in ask(
            address, "bytes\n"
        )


# -- help -------------------------------------------------------------------


def test_help_lists_builtin_and_plugin_commands(serve):
    address = serve(PLUGINS)
    assert ask(address, "help\n") == textwrap.dedent(
        """\
        Supported commands:
          boom -- Fail after some output.
          hello -- Greet somebody.
          help -- List the commands, or describe one.
          interactive -- Keep the connection open for further commands, until "quit".
          quit -- Close the connection.
          refuse -- Reject every value.
        """
    )


def test_help_describes_one_command(serve):
    address = serve({**PLUGINS, "nodoc": lambda connection: None})
    assert ask(address, "help hello\n") == (
        "Help for hello:\n\nGreet somebody.\n\nGive a name unless you are the "
        "world.\n"
    )
    assert ask(address, "help nodoc\n") == "Help for nodoc:\n\n(no description)\n"
    assert ask(address, "help interactive\n").startswith(
        "Help for interactive:\n\nKeep the connection open"
    )
    assert ask(address, "help nosuch\n") == (
        "Unknown command 'nosuch'. Try \"help\".\n"
    )
    assert ask(address, "help a b\n").startswith("Bad arguments for 'help'")


def test_builtin_commands_win_over_plugins_of_the_same_name(serve):
    address = serve({"quit": lambda connection: connection.write("mine\n")})
    assert ask(address, "quit\n") == "Goodbye.\n"


# -- interactive mode ---------------------------------------------------------


def test_interactive_mode_marks_the_end_of_each_output(serve):
    address = serve(PLUGINS)
    with InteractiveClient(address) as client:
        assert client.greeting == 'Interactive mode on. Use "quit" to leave.\n'
        assert client.command("hello") == "Hello, world!\n"
        assert client.command("hello Jim") == "Hello, Jim!\n"
        assert client.command("") == "Hello, Jim!\n"  # repeats
        assert client.command("nosuch") == (
            "Unknown command 'nosuch'. Try \"help\".\n"
        )
        client.send("quit\n")
        assert client.read_to_end() == "Goodbye.\n"


def test_interactive_mode_survives_a_failing_plugin(serve, caplog):
    address = serve(PLUGINS)
    with caplog.at_level(logging.ERROR, LOGGER), InteractiveClient(address) as client:
        # The marker goes on a line of its own after unterminated output.
        assert client.command("boom").startswith("partial output\nError: ")
        assert client.command("hello") == "Hello, world!\n"


def test_interactive_commands_sent_at_once_are_answered_in_order(serve):
    release = threading.Event()

    def slow(connection):
        """Wait for the test."""
        assert release.wait(5)
        connection.write("slow done\n")

    address = serve({**PLUGINS, "slow": slow})
    with connect(address) as sock:
        sock.sendall(b"interactive\nslow\nhello A\nhello B\nquit\nhello C\n")
        release.set()
        assert read_to_end(sock) == (
            'Interactive mode on. Use "quit" to leave.\n-->\n'
            "slow done\n-->\n"
            "Hello, A!\n-->\n"
            "Hello, B!\n-->\n"
            "Goodbye.\n"
        )


def test_a_slow_plugin_does_not_block_other_clients(serve):
    started = threading.Event()
    release = threading.Event()

    def slow(connection):
        """Wait for the test."""
        started.set()
        assert release.wait(5)
        connection.write("slow done\n")

    address = serve({**PLUGINS, "slow": slow})
    with connect(address) as slow_client:
        slow_client.sendall(b"slow\n")
        assert started.wait(5)
        assert ask(address, "hello\n") == "Hello, world!\n"
        release.set()
        assert read_to_end(slow_client) == "slow done\n"


def test_a_client_may_half_close_after_sending_its_command(serve):
    # As "nc -N" does when its input ends.
    started = threading.Event()
    release = threading.Event()

    def slow(connection):
        """Wait for the test."""
        started.set()
        assert release.wait(5)
        connection.write("slow done\n")

    address = serve({"slow": slow})
    with connect(address) as sock:
        sock.sendall(b"slow\n")
        sock.shutdown(socket.SHUT_WR)
        assert started.wait(5)
        release.set()
        assert read_to_end(sock) == "slow done\n"


def half_closed_answer(address, text):
    """Send `text` and half-close, as "nc -N" does; return all the answer."""
    with connect(address) as sock:
        sock.sendall(text.encode("utf-8"))
        sock.shutdown(socket.SHUT_WR)
        return read_to_end(sock)


INTERACTIVE_ON = 'Interactive mode on. Use "quit" to leave.\n-->\n'
HELLO_A_B = INTERACTIVE_ON + "Hello, A!\n-->\n" + "Hello, B!\n-->\n"


def test_an_interactive_client_may_half_close_after_its_commands(serve):
    address = serve(PLUGINS)
    assert half_closed_answer(address, "interactive\nhello A\nhello B\n") == HELLO_A_B
    assert half_closed_answer(address, "interactive\n") == INTERACTIVE_ON


def test_a_last_line_without_newline_counts_when_the_client_half_closes(serve):
    address = serve(PLUGINS)
    assert half_closed_answer(address, "\nhello Ann") == "Hello, Ann!\n"
    assert half_closed_answer(address, "interactive\nhello A\nhello B") == HELLO_A_B
    assert half_closed_answer(address, "interactive\nhello A\n  ") == (
        INTERACTIVE_ON + "Hello, A!\n-->\n")
    assert half_closed_answer(address, "\n \n") == ""


TOO_LONG = "hello " + "x" * 16384 + "\n"
LINE_TOO_LONG = (
    "Error: a command line is limited to 16384 bytes; closing the connection.\n"
)


def test_a_command_line_too_long_gets_an_error_line(serve):
    address = serve(PLUGINS)
    assert ask(address, TOO_LONG) == LINE_TOO_LONG
    assert ask(address, TOO_LONG.rstrip("\n")) == LINE_TOO_LONG  # no newline yet
    with InteractiveClient(address) as client:
        assert client.command("hello") == "Hello, world!\n"
        client.send(TOO_LONG)
        assert client.read_to_end() == LINE_TOO_LONG


# -- plugins from the component registry ----------------------------------------


def test_plugins_default_to_named_utilities_looked_up_per_command(
    serve, component_registry
):
    address = serve()
    assert ask(address, "hello\n") == "Unknown command 'hello'. Try \"help\".\n"
    zope.component.provideUtility(hello, IMonitorPlugin, "hello")
    assert ask(address, "hello\n") == "Hello, world!\n"
    assert "  hello -- Greet somebody.\n" in ask(address, "help\n")


def test_a_plugin_mapping_is_read_per_command(serve):
    plugins = {}
    address = serve(plugins)
    plugins["hello"] = hello
    assert ask(address, "hello\n") == "Hello, world!\n"


# -- addresses and listening ----------------------------------------------------


def test_parse_address():
    assert parse_address(8081) == ("127.0.0.1", 8081)
    assert parse_address(" 8081 ") == ("127.0.0.1", 8081)
    assert parse_address("0.0.0.0:8081") == ("0.0.0.0", 8081)
    assert parse_address("localhost:0") == ("localhost", 0)
    assert parse_address(":8081") == ("", 8081)
    assert parse_address("[::1]:8081") == ("::1", 8081)
    assert parse_address("/run/monitor.sock") == "/run/monitor.sock"
    assert parse_address(("127.0.0.1", 8081)) == ("127.0.0.1", 8081)


@pytest.mark.parametrize(
    "address, complaint",
    [
        ("", "expected a port number"),
        ("monitor.sock", "expected a port number"),
        ("host:", "port must be a number"),
        ("host:http", "port must be a number"),
        ("65536", "port must be a number"),
        ("-1", "expected a port number"),
        ("::1:8081", "IPv6 host in brackets"),
    ],
)
def test_parse_address_rejects(address, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_address(address)


def test_address_from_product_config():
    assert address_from_config({"port": "8081"}) == ("127.0.0.1", 8081)
    assert address_from_config({"bind": "0.0.0.0:8081"}) == ("0.0.0.0", 8081)
    assert address_from_config({"bind": "/tmp/m.sock"}) == "/tmp/m.sock"
    assert address_from_config({"other": "x"}) is None
    with pytest.raises(ValueError, match="not both"):
        address_from_config({"port": "8081", "bind": "8082"})
    with pytest.raises(ValueError, match="'port' must be a port number"):
        address_from_config({"port": "127.0.0.1:8081"})


def test_a_busy_port_logs_a_warning_and_returns_none(serve, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, LOGGER):
            assert serve(PLUGINS, port) is None
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"Monitor server not started: 127.0.0.1:{port} is already in use"
    )


def test_listening_beyond_loopback_logs_a_warning(serve, caplog):
    with caplog.at_level(logging.WARNING, LOGGER):
        host, port = serve(PLUGINS, "127.0.0.1:0")
        assert caplog.records == []
        host, port = serve(PLUGINS, "0.0.0.0:0")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"listens on 0.0.0.0:{port}, which other hosts can reach" in (
        record.getMessage()
    )
    assert ask(("127.0.0.1", port), "hello\n") == "Hello, world!\n"


def test_unix_socket(serve, tmp_path):
    path = str(tmp_path / "monitor.sock")
    assert serve(PLUGINS, path) == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ask(path, "hello\n") == "Hello, world!\n"


def test_unix_socket_left_by_a_dead_process_is_replaced(serve, tmp_path):
    path = str(tmp_path / "monitor.sock")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)
    assert serve(PLUGINS, path) == path
    assert ask(path, "hello\n") == "Hello, world!\n"


def test_unix_socket_of_a_live_server_is_in_use(serve, tmp_path, caplog):
    path = str(tmp_path / "monitor.sock")
    serve(PLUGINS, path)
    with caplog.at_level(logging.WARNING, LOGGER):
        assert serve(PLUGINS, path) is None
    assert caplog.records[-1].getMessage() == (
        f"Monitor server not started: {path} is already in use"
    )
    assert ask(path, "hello\n") == "Hello, world!\n"


def test_stop_server_closes_the_socket_file_and_open_connections(tmp_path):
    path = str(tmp_path / "monitor.sock")
    monitor = MonitorThread(path, PLUGINS)
    monitor.start()
    try:
        with InteractiveClient(path) as client:
            blockingCallFromThread(monitor.reactor, stop_server, monitor.port)
            assert client.read_to_end() == ""
        assert not os.path.exists(path)
        # The reactor lives on: a server can start on it again.
        port = blockingCallFromThread(
            monitor.reactor, start_server, monitor.reactor, path, PLUGINS
        )
        monitor.port = port
        assert ask(path, "hello\n") == "Hello, world!\n"
    finally:
        monitor.stop()


def test_monitor_thread_rejects_a_bad_address_before_starting():
    with pytest.raises(ValueError):
        MonitorThread("nowhere")


def test_the_global_reactor_is_never_imported():
    script = textwrap.dedent(
        """
        import sys
        from plone.app.asyncjobs.monitor import commands, server
        from plone.app.asyncjobs.monitor.tests.client import ask
        monitor = server.MonitorThread(0, {"monitor": commands.monitor})
        assert '"pid"' in ask(monitor.start(), "monitor\\n")
        monitor.stop()
        assert "twisted.internet.reactor" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
