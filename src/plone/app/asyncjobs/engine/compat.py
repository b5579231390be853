"""zc.async's spellings of the job API, for code ported from it.

zc.async and plone.app.async named the job's methods in camelCase; the
engine names them in snake_case.  :class:`ZcAsyncJobSpellings`, a base
class of :class:`~plone.app.asyncjobs.engine.job.Job`, gives every job the
old names as aliases of the new ones:

==========================  ==============================
zc.async                    plone.app.asyncjobs
==========================  ==============================
``addCallback``             ``add_callback``
``addCallbacks``            ``add_callbacks``
``getRetryPolicy``          ``get_retry_policy``
``handleInterrupt``         ``interrupted``
``resumeCallbacks``         ``resume_callbacks``
``assignerUUID``            ``assigner_uuid``
``setUp``                   ``set_up`` (hook)
``tearDown``                ``tear_down`` (hook)
==========================  ==============================

The hooks work both ways: a subclass written for zc.async that overrides
``setUp`` or ``tearDown`` has them called by the engine (they become its
``set_up`` / ``tear_down``), and ``super().setUp()`` in them reaches the
inherited ``set_up``.  A class that defines both spellings of a hook keeps
its own ``set_up`` / ``tear_down``.

Only names that differ in spelling are aliased; where behaviour differs
(statuses, ``begin_by``'s default, failures), see ``docs/porting.rst``.
"""

#: zc.async's hook names and the engine's.
_HOOKS = (("setUp", "set_up"), ("tearDown", "tear_down"))

#: Marks a hook made from a zc.async spelling by ``__init_subclass__``.
_FROM_ZC_ASYNC = "_zc_async_hook"


def _alias(name):
    def method(self, *args, **kwargs):
        return getattr(self, name)(*args, **kwargs)

    method.__doc__ = f"zc.async's spelling of :meth:`{name}`."
    return method


def _hook(function):
    def hook(self, *args, **kwargs):
        return function(self, *args, **kwargs)

    setattr(hook, _FROM_ZC_ASYNC, True)
    hook.__doc__ = function.__doc__
    return hook


class ZcAsyncJobSpellings:
    """Adds zc.async's names to a job class (see the module doc)."""

    __slots__ = ()

    addCallback = _alias("add_callback")
    addCallbacks = _alias("add_callbacks")
    getRetryPolicy = _alias("get_retry_policy")
    handleInterrupt = _alias("interrupted")
    resumeCallbacks = _alias("resume_callbacks")

    @property
    def assignerUUID(self):
        """zc.async's spelling of ``assigner_uuid``."""
        return self.assigner_uuid

    @assignerUUID.setter
    def assignerUUID(self, value):
        self.assigner_uuid = value

    def setUp(self):
        """zc.async's spelling of the ``set_up`` hook."""
        return self._engine_hook("set_up")()

    def tearDown(self, setup_info):
        """zc.async's spelling of the ``tear_down`` hook."""
        return self._engine_hook("tear_down")(setup_info)

    def _engine_hook(self, name):
        # The nearest hook not made from setUp/tearDown: calling one of
        # those from setUp/tearDown (super().setUp()) would recurse.
        for klass in type(self).__mro__:
            hook = klass.__dict__.get(name)
            if hook is not None and not getattr(hook, _FROM_ZC_ASYNC, False):
                return hook.__get__(self, type(self))
        raise AttributeError(name)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for old, new in _HOOKS:
            if old in cls.__dict__ and new not in cls.__dict__:
                setattr(cls, new, _hook(cls.__dict__[old]))
