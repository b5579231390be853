"""A blocking socket client for talking to a monitor server in tests."""

import socket

from plone.app.asyncjobs.monitor.server import OUTPUT_END_MARKER


#: Seconds any single socket operation may take before a test fails.
TIMEOUT = 5.0

_MARKER_LINE = ("\n" + OUTPUT_END_MARKER + "\n").encode()


def connect(address):
    """Open a socket to `address`, a (host, port) tuple or a socket path."""
    if isinstance(address, str):
        family = socket.AF_UNIX
    elif ":" in address[0]:
        family = socket.AF_INET6
    else:
        family = socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def read_to_end(sock):
    """Read until the server closes the connection; return the text."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8")


def ask(address, text):
    """Send `text` on a new connection; return all the server answers."""
    with connect(address) as sock:
        sock.sendall(text.encode("utf-8"))
        return read_to_end(sock)


class InteractiveClient:
    """A connection switched to interactive mode, read output by output."""

    def __init__(self, address):
        self.sock = connect(address)
        self._pending = b""
        self.greeting = self.command("interactive")

    def send(self, text):
        self.sock.sendall(text.encode("utf-8"))

    def read_output(self):
        """Return the next command output, up to the marker line."""
        while True:
            # Prefix a newline so that an empty output, where the marker
            # is the very first line, is found too.
            data = b"\n" + self._pending
            end = data.find(_MARKER_LINE)
            if end >= 0:
                self._pending = data[end + len(_MARKER_LINE):]
                return data[1:end + 1].decode("utf-8")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread: {self._pending!r}")
            self._pending += chunk

    def command(self, line):
        self.send(line + "\n")
        return self.read_output()

    def read_to_end(self):
        return self._pending.decode("utf-8") + read_to_end(self.sock)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
