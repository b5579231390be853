"""Running a dispatcher (and the monitor server) inside a Zope process.

``single_db.zcml`` / ``multi_db.zcml`` at the package root choose the role;
:mod:`.runtime` starts and stops everything; :mod:`.config` reads zope.conf.
"""
