"""The ``router-r1`` command: one entry point over the gateway, the local stack, training,
evaluation and the protocol tools (the top of the package graph; nothing imports it)."""
