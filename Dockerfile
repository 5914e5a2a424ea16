# syntax=docker/dockerfile:1
# The fleet orchestrator service: `orchestrator serve`, gRPC on 50055, Prometheus /metrics on METRICS_PORT.
#   docker build -t fleet-orchestrator:0.1.0 .
# Both stages use the same base tag, so the virtualenv built in the first runs on the same interpreter in the
# second. Its Python minor version is the one of the RayCluster image (rayproject/ray:<ray>-py311): Ray Client
# refuses a driver whose Python minor version differs from the cluster's. tests/deploy checks both.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
# services/ holds the orchestrator package and the generated protobuf code (services/fleet).
COPY services/ services/
# Runtime dependencies only: neither `dev` (tests, linters) nor `local-model` (the demo's embedded LLM).
RUN pip install --no-cache-dir .

FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="fleet-orchestrator" \
      org.opencontainers.image.description="gRPC service running councils of LLM agents on Ray" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --home-dir /home/orchestrator --create-home \
       --shell /usr/sbin/nologin orchestrator
COPY --from=build /opt/venv /opt/venv
# The council bootstrap script, run by the setup-councils Job (deploy/k8s/11-setup-councils.yaml).
COPY scripts/setup_all_councils.py /app/scripts/setup_all_councils.py
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/orchestrator \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRPC_PORT=50055
WORKDIR /app
USER 10001:10001
# gRPC, metrics and the web view (WEB_PORT: the manifests set 8080, also serve --embedded's default; unset = off).
# The plaintext health port (GRPC_HEALTH_PORT) is for the kubelet's probes only and not published.
EXPOSE 50055 9090 8080
ENTRYPOINT ["orchestrator"]
CMD ["serve"]
