# The proxy only: engines (vLLM, llama.cpp), Redis and Prometheus run as their own services.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY router_model ./router_model
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 router
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY model_registry.yaml ./model_registry.yaml
USER router
ENV ROUTER_R1_HOST=0.0.0.0 ROUTER_R1_PORT=8080 ROUTER_R1_REGISTRY=/app/model_registry.yaml
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"
CMD ["router-r1", "serve"]
