"""Real servers started by tests (redis-server, Prometheus, uvicorn) on free loopback ports."""
