"""Registering the commands through ZCML."""

import json

import zope.component
from zope.configuration import xmlconfig

from plone.app.asyncjobs.monitor import commands
from plone.app.asyncjobs.monitor.interfaces import IMonitorPlugin
from plone.app.asyncjobs.monitor.tests.client import ask


def load_monitor_zcml():
    xmlconfig.string(
        """
        <configure xmlns="http://namespaces.zope.org/zope">
          <include package="zope.component" file="meta.zcml" />
          <include package="plone.app.asyncjobs.monitor" />
        </configure>
        """
    )


def test_configure_zcml_registers_the_commands(component_registry):
    load_monitor_zcml()
    assert dict(zope.component.getUtilitiesFor(IMonitorPlugin)) == {
        "monitor": commands.monitor,
        "dbinfo": commands.dbinfo,
        "zeostatus": commands.zeostatus,
    }
    for plugin in (commands.monitor, commands.dbinfo, commands.zeostatus):
        assert IMonitorPlugin.providedBy(plugin)


def test_a_server_without_plugins_serves_the_registered_commands(
    component_registry, serve
):
    load_monitor_zcml()
    address = serve()
    assert ask(address, "help\n").splitlines() == [
        "Supported commands:",
        "  dbinfo -- Show ZODB database statistics.",
        "  help -- List the commands, or describe one.",
        '  interactive -- Keep the connection open for further commands, until "quit".',
        "  monitor -- Show the health of this process.",
        "  quit -- Close the connection.",
        "  zeostatus -- Show whether the ZEO clients are connected to their servers.",
    ]
    assert json.loads(ask(address, "zeostatus\n")) == {}
    assert "pid" in json.loads(ask(address, "monitor\n"))
