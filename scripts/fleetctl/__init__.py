"""The fleet operator's configuration rollouts (``scripts/fleet.py config push | status``).

Pure parts, no I/O and no clock of their own: ``hubs`` (the hubs file), ``documents`` (the document
body and the signed per-hub documents), ``plan`` (waves), ``reports`` (what a hub's
``config/reported`` says), ``rollout`` (the rollout's state machine) and ``statefile`` (its JSON form).
The I/O around them: ``link`` (MQTT), ``engine`` (drives a rollout: the importable API),
``status`` (``config status``), ``display`` (progress and summaries) and ``cli`` (arguments).
"""
