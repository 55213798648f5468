# syntax=docker/dockerfile:1
# The proxy only: engines (vLLM, llama.cpp), Redis, Prometheus and Grafana run as their own
# services (docker-compose.yml). Slim, non-root, no build tools in the final image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY router_model ./router_model
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin router
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels pip install /wheels/*.whl
WORKDIR /app
COPY --chown=root:root model_registry.yaml ./model_registry.yaml
USER router
# PROMETHEUS_MULTIPROC_DIR is needed only with --workers > 1 (docker-compose.yml sets both).
ENV ROUTER_R1_HOST=0.0.0.0 ROUTER_R1_PORT=8080 ROUTER_R1_REGISTRY=/app/model_registry.yaml
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["router-r1", "serve"]
