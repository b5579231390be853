"""Event objects notified through ``zope.event``."""
from zope.interface import implementer
from zope.interface.interfaces import ObjectEvent

from plone.app.asyncjobs.engine import interfaces


@implementer(interfaces.IDispatcherRegistered)
class DispatcherRegistered(ObjectEvent):
    pass


@implementer(interfaces.IDispatcherUnregistered)
class DispatcherUnregistered(ObjectEvent):
    pass


@implementer(interfaces.IDispatcherActivated)
class DispatcherActivated(ObjectEvent):
    pass


@implementer(interfaces.IDispatcherDeactivated)
class DispatcherDeactivated(ObjectEvent):
    pass


@implementer(interfaces.IDispatcherReactivated)
class DispatcherReactivated(ObjectEvent):
    pass


@implementer(interfaces.IJobCompleted)
class JobCompleted(ObjectEvent):
    pass
