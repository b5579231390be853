"""The contract between the monitor server and the commands it runs.

A monitor command is a *plugin*: a callable registered as a named
zope.component utility providing `IMonitorPlugin`.  The utility name is the
command word a client types.  This is the convention of zc.monitor, so a
command written for it needs only to be registered against this interface
(and to write `str`, not bytes).
"""

from zope.interface import Attribute
from zope.interface import Interface


class IMonitorConnection(Interface):
    """The channel through which a plugin answers its client."""

    open_connections = Attribute(
        "The number of client connections currently open on the monitor "
        "server running the command, the asking one included."
    )

    def write(text):
        """Send `text` (a `str`) to the client.

        Nothing is added: a plugin ends its lines with a newline itself.
        Text is sent in the order written and encoded as UTF-8.  `write`
        may be called any number of times, from the thread running the
        plugin, but only until the plugin returns; afterwards it raises
        `RuntimeError`.  Writing to a client that has disconnected is
        silently discarded, so a plugin needs no special case for it.
        """


class IMonitorPlugin(Interface):
    """A monitor command.

    Register a plugin as a named utility providing this interface, the
    name being the command word, for example in ZCML::

        <utility
            component="my.package.monitor.jobcount"
            provides="plone.app.asyncjobs.monitor.interfaces.IMonitorPlugin"
            name="jobcount"
            />

    The server looks plugins up when a command arrives, so every
    registration made before that moment is visible.  The built-in commands
    `help`, `interactive` and `quit` belong to the server and cannot be
    replaced by a plugin of the same name.

    The first line of the plugin's docstring is its summary in the `help`
    listing; `help NAME` shows the whole docstring.
    """

    def __call__(connection, *args):
        """Run the command and write its output to `connection`.

        `connection` provides `IMonitorConnection`.  `args` are the words
        that followed the command word on the client's line (split on
        whitespace, no quoting), all `str`.  Arguments that do not fit the
        plugin's signature are reported to the client as bad arguments
        without calling the plugin.

        The plugin runs in a thread of the server reactor's thread pool,
        with no open transaction, ZODB connection or Zope site: a plugin
        that reads a database opens its own connection and closes it before
        returning.  The return value is ignored.

        To reject a request the user got wrong, raise `CommandError`; its
        message is shown to the client as is.  Any other exception is a bug
        in the plugin: the client gets a one-line error and the traceback
        goes to the server log (logger ``plone.app.asyncjobs.monitor``).
        """


class CommandError(Exception):
    """A plugin's report that the user's request cannot be served.

    The server writes ``Error: <message>`` to the client and logs nothing,
    because the problem lies with the request (an unknown database name, a
    malformed number), not with the server.
    """
