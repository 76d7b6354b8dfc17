"""The fleet's side of the hub: signed commands and signed configuration documents.

Configuration documents, one job per module: ``document`` checks one (pure), ``overlay`` lays the
fleet's sections over the local file (pure), ``report`` is what ``config/reported`` carries (pure),
``state`` what the hub remembers of the fleet (pure), ``statefile`` keeps that on disk atomically,
``resume`` decides what a hub starts with (pure), ``service`` applies documents with injected I/O,
``effective`` is what ``yiyang run`` and ``yiyang config check`` use. This package's ``__init__``
imports nothing: gateway.config imports ``signing`` from here.
"""
