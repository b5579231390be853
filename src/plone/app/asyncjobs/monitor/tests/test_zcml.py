"""Registering the commands through ZCML."""

import json

import zope.component
from zope.configuration import xmlconfig

from plone.app.asyncjobs.monitor import commands
from plone.app.asyncjobs.monitor.async_command import async_
from plone.app.asyncjobs.monitor.asyncdb_command import asyncdb
from plone.app.asyncjobs.monitor.interfaces import IMonitorPlugin
from plone.app.asyncjobs.monitor.metrics_command import metrics
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
        "async": async_,
        "asyncdb": asyncdb,
        "metrics": metrics,
    }
    for plugin in (commands.monitor, commands.dbinfo, commands.zeostatus, async_, asyncdb,
                   metrics):
        assert IMonitorPlugin.providedBy(plugin)


def test_a_server_without_plugins_serves_the_registered_commands(
    component_registry, serve
):
    load_monitor_zcml()
    address = serve()
    assert ask(address, "help\n").splitlines() == [
        "Supported commands:",
        "  async -- Show the job dispatchers of this process, from memory (no database).",
        "  asyncdb -- Show the jobs and dispatchers stored in the database (read-only).",
        "  dbinfo -- Show ZODB database statistics.",
        "  help -- List the commands, or describe one.",
        '  interactive -- Keep the connection open for further commands, until "quit".',
        "  metrics -- Show this process's job metrics, in the Prometheus text format.",
        "  monitor -- Show the health of this process.",
        "  quit -- Close the connection.",
        "  zeostatus -- Show whether the ZEO clients are connected to their servers.",
    ]
    assert json.loads(ask(address, "zeostatus\n")) == {}
    assert "pid" in json.loads(ask(address, "monitor\n"))
    assert ask(address, "async status\n") == "Error: No dispatcher runs in this process\n"
    assert ask(address, "asyncdb status\n").startswith("Error: asyncdb status: which database?")
