"""The allow-list of what a schedule saved in a site may call.

A schedule saved in the control panel or the REST API (:mod:`.saved`) is
written by a Site Administrator, who may not run arbitrary Python: it may
only name a *schedulable*, a function an integrator offered in ZCML::

    <asyncjobs:schedulable
        name="nightly-report"
        handler="my.addon.jobs.nightly_report"
        title="Nightly report"
        />

The function is called as ``handler(site, **arguments)``, with the
arguments the schedule gives (JSON values), so it must check them as it
would a form's.  Declared schedulables are collected in
:data:`SCHEDULABLES`, by name.
"""
from dataclasses import dataclass

from zope.configuration.fields import GlobalObject
from zope.interface import Interface
from zope.schema import TextLine

from plone.app.asyncjobs.engine.schedules import dotted_name


#: The schedulables this process's ZCML declared, by name.
SCHEDULABLES = {}


@dataclass(frozen=True)
class Schedulable:
    """A function saved schedules may call: ``handler`` is its dotted name."""

    name: str
    handler: str
    title: str


def lookup(name):
    """The schedulable ``name``; ``ValueError`` naming the choices if none."""
    try:
        return SCHEDULABLES[name]
    except (KeyError, TypeError):
        choices = ", ".join(sorted(SCHEDULABLES)) or "none is declared"
        raise ValueError(f"unknown schedulable {name!r} (choices: {choices})") from None


def allows(handler):
    """Whether some schedulable calls the dotted name ``handler``."""
    return any(found.handler == handler for found in SCHEDULABLES.values())


class ISchedulableDirective(Interface):
    name = TextLine(title="Name saved schedules give", required=True)
    handler = GlobalObject(title="The function, called with the site first", required=True)
    title = TextLine(title="What the control panel shows", required=False)


def schedulable(_context, name, handler, title=None):
    """The directive's handler."""
    declared = Schedulable(name, dotted_name(handler), title or name)
    _context.action(discriminator=("asyncjobs:schedulable", name),
                    callable=SCHEDULABLES.__setitem__, args=(name, declared))
