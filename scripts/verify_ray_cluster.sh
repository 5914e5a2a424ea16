#!/usr/bin/env bash
# Checks, on one machine, what the Kubernetes deployment relies on: `orchestrator serve` drives agents on a
# separate Ray cluster of the pinned version whose Python has neither the orchestrator nor its dependencies
# (the stock rayproject/ray image), with Ray token authentication on. The service ships its package and the
# agents' pinned dependencies in the runtime_env (RAY_SHIP_CODE), so the cluster needs PyPI access for pip.
#
#   bash scripts/verify_ray_cluster.sh        (after `make install`; takes a minute or two)
#
# Everything it starts is stopped at the end, and its files live in one temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
RAY_VERSION=$("$BIN/python" -c "import ray; print(ray.__version__)")
WORK=$(mktemp -d /tmp/orchestrator-raycheck-XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # The cluster's processes, and only they, carry this run's directory in their command lines
    # (`ray stop` would end every Ray on the machine).
    for pid in $(pgrep -f -- "$WORK" || true); do kill "$pid" 2>/dev/null || true; done
    sleep 3
    for pid in $(pgrep -f -- "$WORK" || true); do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$BIN/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }

echo "== a Ray $RAY_VERSION cluster in its own virtualenv (ray[default]: no orchestrator, no openai)"
python3 -m venv "$WORK/ray-venv"
"$WORK/ray-venv/bin/pip" install -q "ray[default,client]==$RAY_VERSION" 2>&1 | { grep -v "^WARNING: Location" || true; }
"$WORK/ray-venv/bin/python" -c "import orchestrator" 2>/dev/null && { echo "the cluster must not have the package"; exit 1; }
GCS=$(free_port); CLIENT=$(free_port); LLM=$(free_port); GRPC=$(free_port)
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN
RAY_AUTH_TOKEN=$("$BIN/python" -c "import secrets; print(secrets.token_hex(32))")
(cd "$WORK" && RAY_USAGE_STATS_ENABLED=0 "$WORK/ray-venv/bin/ray" start --head --port="$GCS" \
    --ray-client-server-port="$CLIENT" --min-worker-port=21000 --max-worker-port=21999 --num-cpus=2 \
    --include-dashboard=false --disable-usage-stats --temp-dir="$WORK/ray" >/dev/null)

echo "== the fake OpenAI-compatible server and the service (RAY_ADDRESS=ray://127.0.0.1:$CLIENT)"
"$BIN/python" -m orchestrator.testing.fake_llm --port "$LLM" --latency 0.2 >"$WORK/llm.log" 2>&1 &
PIDS+=($!)
(cd "$WORK" && VLLM_URL="http://127.0.0.1:$LLM" VLLM_MODEL=fake-llm RAY_ADDRESS="ray://127.0.0.1:$CLIENT" \
    STORE_URL="sqlite:///$WORK/o.db" GRPC_HOST=127.0.0.1 GRPC_PORT="$GRPC" LOG_FORMAT=json \
    exec "$BIN/orchestrator" serve >"$WORK/serve.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 1 120); do
    grep -q grpc_listening "$WORK/serve.log" && break
    if ! kill -0 "${PIDS[1]}" 2>/dev/null; then tail -5 "$WORK/serve.log"; exit 1; fi
    sleep 1
done
grep -q grpc_listening "$WORK/serve.log" || { tail -5 "$WORK/serve.log"; exit 1; }

echo "== councils and a deliberation on the cluster"
"$BIN/orchestrator" councils setup --address "127.0.0.1:$GRPC" --num-agents 2 --rounds 1 | sed -n '1,2p' 
"$BIN/orchestrator" deliberate --address "127.0.0.1:$GRPC" --role DEV --rounds 1 --agents 2 \
    "Write a Python function that reverses the words of a sentence" | sed -n '1p' 
echo "== what the cluster installed for the agents (runtime_env pip)"
ls "$WORK"/ray/session_latest/runtime_resources/pip/*/virtualenv/lib/python3*/site-packages \
    | grep -E '^(openai|httpx2|structlog|pydantic)-.*dist-info$'
echo "ok: agents ran on a Ray $RAY_VERSION cluster that has none of the service's code"
