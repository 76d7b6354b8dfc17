"""The fleet's side of the hub: signed commands (and, later, signed configuration documents)."""
