#!/usr/bin/env bash
# Checks, on one machine, what the Kubernetes deployment relies on: `orchestrator serve` drives agents on a
# separate Ray cluster of the pinned version, shaped like deploy/k8s/09-kuberay-cluster.yaml: a head (no CPUs, no
# agent slots) and two workers, each its own `ray start` with its own raylet, whose Python has neither the
# orchestrator nor its dependencies (stock `ray[default]` in its own virtualenv, made once under
# ~/.cache/fleet-orchestrator), with Ray token authentication on. The service ships its package and the agents'
# pinned dependencies in the runtime_env (RAY_SHIP_CODE), so the cluster needs PyPI access for pip.
# Then one worker's raylet is SIGKILLed during the deliberation (a worker pod lost): the agents restart on the
# other worker, the deliberation completes, and the monitor shows the dead node.
#
#   bash scripts/verify_ray_cluster.sh        (after `make install`; a few minutes the first time)
#
# The cluster is orchestrator/testing/ray_cluster.py (the e2e test's too). Everything started here is stopped by
# PID at the end (never `ray stop`: it would end every Ray on the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/.venv/bin}
WORK=$(mktemp -d /tmp/orchestrator-raycheck-XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$BIN/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
wait_for() {  # wait_for FILE PATTERN SECONDS PID
    for _ in $(seq 1 "$3"); do
        grep -q "$2" "$1" && return 0
        kill -0 "$4" 2>/dev/null || { tail -20 "$1"; return 1; }
        sleep 1
    done
    tail -20 "$1"; return 1
}

echo "== a Ray cluster: head + 2 workers, ray[default] in its own virtualenv, token auth"
"$BIN/python" -m orchestrator.testing.ray_cluster --workers 2 >"$WORK/cluster.env" 2>"$WORK/cluster.log" &
PIDS+=($!)
wait_for "$WORK/cluster.env" '^READY' 600 "${PIDS[0]}"
set -a; . <(grep -E '^(RAY_|RAYLET_PID_)' "$WORK/cluster.env"); set +a
echo "   $RAY_ADDRESS (raylets: head $RAYLET_PID_HEAD, worker-1 $RAYLET_PID_WORKER_1, worker-2 $RAYLET_PID_WORKER_2)"

echo "== the fake OpenAI-compatible server and the service"
LLM=$(free_port); GRPC=$(free_port)
"$BIN/python" -m orchestrator.testing.fake_llm --port "$LLM" --latency 1.0 >"$WORK/llm.log" 2>&1 &
PIDS+=($!)
(cd "$WORK" && VLLM_URL="http://127.0.0.1:$LLM" VLLM_MODEL=fake-llm STORE_URL="sqlite:///$WORK/o.db" \
    GRPC_HOST=127.0.0.1 GRPC_PORT="$GRPC" LOG_FORMAT=json exec "$BIN/orchestrator" serve >"$WORK/serve.log" 2>&1) &
PIDS+=($!)
wait_for "$WORK/serve.log" grpc_listening 300 "${PIDS[2]}"

echo "== councils, spread over both workers"
"$BIN/orchestrator" councils setup --address "127.0.0.1:$GRPC" --num-agents 2 --rounds 1 | sed -n '1,2p'
"$BIN/orchestrator" monitor --once --address "127.0.0.1:$GRPC" | sed -n '/Ray nodes/,/actor restarts/p'

echo "== a deliberation; worker-1's raylet SIGKILLed while it runs"
"$BIN/orchestrator" deliberate --address "127.0.0.1:$GRPC" --role DEV --rounds 1 --agents 2 \
    "Write a Python function that reverses the words of a sentence" >"$WORK/deliberate.out" 2>&1 &
DELIBERATE=$!
sleep 4
kill -9 "$RAYLET_PID_WORKER_1"
for _ in $(seq 1 30); do
    "$BIN/orchestrator" monitor --once --address "127.0.0.1:$GRPC" >"$WORK/monitor.out" || true
    grep -q DEAD "$WORK/monitor.out" && break
    sleep 1
done
sed -n '/Ray nodes/,/actor restarts/p' "$WORK/monitor.out"
wait "$DELIBERATE" || { cat "$WORK/deliberate.out"; exit 1; }
sed -n '1p' "$WORK/deliberate.out"
"$BIN/orchestrator" monitor --once --address "127.0.0.1:$GRPC" | sed -n '/Ray nodes/,/actor restarts/p'
echo "ok: agents ran spread over two Ray workers of a cluster that has none of the service's code, and survived one"
