"""The ``@asyncjobs`` service (:mod:`.service`), its routes and their handlers."""
