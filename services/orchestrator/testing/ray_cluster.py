"""A real multi-node Ray cluster on one machine, shaped like the deployment's RayCluster (deploy/k8s/09-…).

One head and N worker nodes, each a separate `ray start --block` process with its own raylet, temp dir, ports,
resources and labels; token authentication on; the stock `ray[default]` of the pinned version in its own
virtualenv (created once under a cache dir), so the cluster has none of the service's code: the service ships it in
the runtime_env, as in production. The head offers no CPUs and no agent slots (GCS and Ray Client server only);
the workers offer CPUs and `fleet_agent` slots.

Everything started here is stopped by PID (the node's `ray start` and every process below it or carrying the
cluster's own directory in its command line): `ray stop` would end every Ray on the machine.

    python -m orchestrator.testing.ray_cluster --workers 2     (prints the addresses; Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType

from orchestrator.adapters.ray.agents import AGENT_RESOURCE

CACHE = Path(os.environ.get("FLEET_CACHE_DIR", Path.home() / ".cache" / "fleet-orchestrator"))
NODE_HEALTH = {
    # How fast the GCS declares a silent node dead (Ray's defaults take about 30 s): seconds here.
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
    # A raylet waits this long for its node's agents (dashboard agent, runtime_env agent) to come up: they import
    # much of Ray, which on a small, busy machine takes longer than the default allows.
    "RAY_agent_register_timeout_ms": "120000",
}


def ray_version() -> str:
    return metadata.version("ray")


def ensure_ray_venv(version: str | None = None, cache: Path = CACHE) -> Path:
    """The cluster's Python: a virtualenv with only `ray[default]` of the pinned version, made once (under a file
    lock, so parallel test sessions wait for one another) and reused. Returns its directory."""
    version = version or ray_version()
    venv = cache / f"ray-venv-{version}"
    marker = venv / ".fleet-complete"
    requirement = f"ray[default,client]=={version}"
    if marker.exists() and marker.read_text().strip() == requirement:
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"ray-venv-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == requirement:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        # The same Python minor as the service: Ray Client refuses a driver whose Python differs.
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", requirement], check=True)
        marker.write_text(requirement)
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        below = [p for p, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def _marked(marker: str) -> list[int]:
    """Processes whose command line carries `marker` (this cluster's own directory)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


@dataclass
class RayNode:
    name: str
    temp_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    known: set[int] = field(default_factory=set)

    def pids(self) -> list[int]:
        if self.proc is None:
            return sorted(self.known)
        self.known.update([self.proc.pid, *_children(self.proc.pid)])
        return sorted(self.known)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of `ray start`'s output and of the node's raylet log, to say why a node did not come up."""
        raylet = sorted(self.temp_dir.glob("session_*/logs/raylet.out"))
        texts = [self.log_path.read_text(errors="replace")[-chars:]]
        texts += [f"--- {path}:\n{path.read_text(errors='replace')[-chars:]}" for path in raylet[-1:]]
        return "\n".join(texts)

    def raylet_pid(self) -> int:
        for pid in self.pids():
            if _comm(pid) == "raylet":
                return pid
        raise RuntimeError(f"{self.name}: no raylet running")


class LocalRayCluster:
    """`with LocalRayCluster(workers=2) as cluster:` starts the cluster; `cluster.address` is the Ray Client
    address (`ray://127.0.0.1:PORT`), `cluster.client_env()` the environment a driver needs (the token)."""

    def __init__(self, *, workers: int = 2, cpus_per_worker: int = 2, agent_slots: int = 100) -> None:
        self.venv = ensure_ray_venv()
        # Short: Ray's unix socket paths live under it and may not exceed ~107 characters.
        self.root = Path(tempfile.mkdtemp(prefix="rayc-", dir="/tmp"))
        # Readable by all, as /tmp/ray is: the sandbox starts bwrap (from the runtime_env, under here) as nobody.
        self.root.chmod(0o755)
        self.token = secrets.token_hex(32)
        self.gcs_port = free_port()
        self.client_port = free_port()
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.agent_slots = agent_slots
        self.nodes: list[RayNode] = []

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def client_env(self) -> dict[str, str]:
        return {"RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PYTHONPATH", "VIRTUAL_ENV"))}
        venv_bin = str(self.venv / "bin")
        return {
            **env,
            **NODE_HEALTH,
            "PATH": f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def _launch(self, name: str, args: list[str]) -> RayNode:
        node = RayNode(name, self.root / name, self.root / f"{name}.log")
        node.temp_dir.mkdir()
        ports = {
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }
        command = [
            str(self.venv / "bin" / "ray"),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={node.temp_dir}",
            "--object-store-memory=100000000",
            "--min-worker-port=0",
            "--max-worker-port=0",
            "--disable-usage-stats",
            *(f"{k}={v}" for k, v in ports.items()),
            *args,
        ]
        with node.log_path.open("wb") as log:
            node.proc = subprocess.Popen(command, env=self._env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        self.nodes.append(node)
        return node

    def _wait_started(self, node: RayNode, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while b"Ray runtime started" not in node.log_path.read_bytes():
            assert node.proc is not None
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray {node.name} did not start ({node.proc.returncode}):\n{node.log_tail()}")
            time.sleep(0.3)
        node.pids()

    def start(self, timeout_s: float = 180.0, attempts: int = 3) -> None:
        self._start_node("head", self._head_args, timeout_s, attempts)
        for i in range(1, self.workers + 1):  # one after the other: starting a node is CPU-heavy
            self._start_node(f"worker-{i}", self._worker_args, timeout_s, attempts)

    def _head_args(self, name: str) -> list[str]:
        self.gcs_port, self.client_port = free_port(), free_port()
        return [
            "--head",
            f"--port={self.gcs_port}",
            f"--ray-client-server-port={self.client_port}",
            "--num-cpus=0",
            "--include-dashboard=false",
            "--no-monitor",  # the autoscaler's monitor: nothing to scale here
            "--labels=fleet/node-group=head",
        ]

    def _worker_args(self, name: str) -> list[str]:
        return [
            f"--address=127.0.0.1:{self.gcs_port}",
            f"--num-cpus={self.cpus_per_worker}",
            f'--resources={{"{AGENT_RESOURCE}": {self.agent_slots}}}',
            f"--labels=fleet/node-group=agents,fleet/node-name={name}",
        ]

    def _start_node(self, name: str, args: Callable[[str], list[str]], timeout_s: float, attempts: int) -> None:
        """`ray start` gives a node's raylet a fixed 30 s to register with the GCS, which a busy machine can miss:
        a node that did not come up is stopped and started afresh (new ports, new temp dir), a few times."""
        for attempt in range(1, attempts + 1):
            node = self._launch(name if attempt == 1 else f"{name}.{attempt}", args(name))
            node.name = name
            try:
                self._wait_started(node, timeout_s)
                return
            except RuntimeError:
                if attempt == attempts:
                    raise
                self.nodes.remove(node)
                _signal_all([*node.pids(), *_marked(str(node.temp_dir))], signal.SIGKILL)
                if node.proc is not None:
                    node.proc.wait(10)

    def worker(self, name: str) -> RayNode:
        return next(n for n in self.nodes if n.name == name)

    def add_worker(self, name: str, timeout_s: float = 180.0) -> RayNode:
        """Starts one more worker node, as KubeRay does when it replaces a lost worker pod."""
        self._start_node(name, self._worker_args, timeout_s, attempts=3)
        return self.worker(name)

    def alive_workers(self) -> list[RayNode]:
        """The worker nodes whose `ray start --block` still runs (it ends once its raylet is gone)."""
        return [n for n in self.nodes if n.name != "head" and n.proc is not None and n.proc.poll() is None]

    def kill_node(self, name: str) -> None:
        """SIGKILLs every process of worker `name` at once (its `ray start`, raylet, Ray workers and all they
        started), as when its pod is deleted or its machine is lost: nothing of it gets to say goodbye."""
        node = self.worker(name)
        _signal_all([*node.pids(), *_marked(f"{node.temp_dir}/")], signal.SIGKILL)
        if node.proc is not None:
            node.proc.wait(10)

    def kill_raylet(self, name: str) -> int:
        """SIGKILLs the raylet of worker `name`, as when its pod is OOM-killed or its node reclaimed; its
        `ray start --block` then ends the node's other processes. Returns the raylet's PID."""
        pid = self.worker(name).raylet_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace, to every process of every node: the tracked process trees and
        whatever still carries this cluster's directory (Ray workers re-parented after their raylet died)."""
        pids = sorted({p for node in self.nodes for p in node.pids()} | set(_marked(str(self.root))))
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)
        _signal_all([*pids, *_marked(str(self.root))], signal.SIGKILL)
        for node in self.nodes:
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    with LocalRayCluster(workers=args.workers) as cluster:
        for key, value in cluster.client_env().items():
            print(f"{key}={value}", flush=True)
        for node in cluster.nodes:  # e.g. RAYLET_PID_WORKER_1=1234, for a script that loses a worker on purpose
            print(f"RAYLET_PID_{node.name.upper().replace('-', '_')}={node.raylet_pid()}", flush=True)
        print("READY", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


if __name__ == "__main__":
    main()
