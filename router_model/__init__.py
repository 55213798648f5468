"""Router-R1: the protocol core, rewards and model registry shared by server, training and eval.

Subpackages: ``router_model.protocol`` (prompt rendering, turn parsing, observations, name
resolution), ``router_model.rewards`` (format, outcome, cost, combination) and
``router_model.registry`` (the ``model_registry.yaml`` schema and loader).
"""
