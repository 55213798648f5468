"""Operational views of the gateway: stored traces, and what ``/ready`` shows."""
