"""What a sandboxed run sees of the host: an allow-list, worked out once per interpreter and tool set.

Every entry is bound read-only at its own path (so the interpreter finds its prefix and the loader its libraries
where they were built to be), and nothing else of the host exists inside. The entries, and why each is there:

- **The interpreter**: the executable of `python` (by default the interpreter the service itself runs, so a
  solution runs on the Python the task expects; `SANDBOX_PYTHON` names another), and inside the sandbox
  `/usr/local/bin/python3` and `/usr/local/bin/python` link to it (the harness runs `python3` from PATH).
- **Its standard library**: the directories `sysconfig` reports as `stdlib` and `platstdlib` (with
  `lib-dynload`, the C extension modules). Not the interpreter's `site-packages` beyond what lies inside the
  stdlib directory, and never a virtual environment: runs use `-I -S`, and the checkout is not there.
- **The dynamic loader and the shared libraries** the interpreter, its extension modules and the tools below
  need, as `ldd` resolves them, each file (and each symlink on the way to it) at its own path, and
  `/etc/ld.so.cache` so the loader finds them the way it does on the host.
- **`prlimit`** (util-linux): sets the per-process limits inside the sandbox; **`setpriv`** (util-linux): when
  the service is root, switches the run to its own uid after the sandbox is built (see bwrap.py).
- **`sh`, `chmod` and `chown`**: the linters copy a tool's binary into the work dir and start it with a one-line
  shell; when the service is root, the run's first step hands the work dirs to the sandbox user (`chown`).
- **`/usr/share/zoneinfo`** (time zones, for `zoneinfo` and `time`) and the `C.utf8` locale where the host has
  it as a directory (older glibc).
- **A generated `/etc`**: `passwd` and `group` with the sandbox user alone (uid/gid 1000, home /work),
  `nsswitch.conf` (files only), `hosts` (localhost), `hostname`, `localtime` (UTC). Nothing of the host's /etc.

Not there: the service's config, tokens, TLS keys and store; /home, /root (beyond an interpreter that lives
there), /opt, /srv, /var, /run, /work of the host, the checkout and its virtual environment, /sys. The run gets
its own /proc (its PID namespace only), a minimal /dev and size-bounded tmpfs mounts for /work, /tmp, /dev/shm.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import PurePosixPath

SANDBOX_UID = 1000
SANDBOX_USER = "sandbox"
SANDBOX_HOME = "/work"
PYTHON_LINKS = ("/usr/local/bin/python3", "/usr/local/bin/python")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
TOOLS = ("prlimit", "setpriv", "sh", "chmod", "chown")
DATA_DIRS = ("/usr/share/zoneinfo", "/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8")
LOADER_CACHE = "/etc/ld.so.cache"
ASK_TIMEOUT_S = 30.0

_ASK_PYTHON = (
    "import json,sys,sysconfig;p=sysconfig.get_paths();"
    "print(json.dumps({'executable':sys.executable,'stdlib':p['stdlib'],'platstdlib':p['platstdlib']}))"
)


class LayoutError(Exception):
    """The allow-list cannot be worked out (no such interpreter, a tool missing); the sandbox is unavailable."""


@dataclass(frozen=True)
class Layout:
    """The read-only binds (files and directories), symlinks to recreate, and where the tools are."""

    python: str
    """The interpreter's executable (its real path)."""
    binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    """(target, location) pairs."""
    tools: dict[str, str]
    """Tool name -> its path inside the sandbox (the same as on the host)."""

    def directories(self) -> list[str]:
        """Every directory to create (mode 0755) before the binds and links, parents first."""
        wanted: set[str] = set()
        for path in (*self.binds, *(location for _, location in self.symlinks)):
            wanted.update(str(p) for p in PurePosixPath(path).parents if str(p) != "/")
        links = {location for _, location in self.symlinks}
        return sorted(wanted - links, key=lambda p: (p.count("/"), p))


def etc_files() -> dict[str, str]:
    """The generated /etc: enough for `pwd`, `getpass`, `socket.gethostname` and name lookups of localhost."""
    user, uid = SANDBOX_USER, SANDBOX_UID
    return {
        "/etc/passwd": f"{user}:x:{uid}:{uid}:{user}:{SANDBOX_HOME}:/usr/sbin/nologin\n",
        "/etc/group": f"{user}:x:{uid}:\n",
        "/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\n",
        "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "/etc/hostname": "sandbox\n",
    }


@functools.cache
def layout_for(python: str) -> Layout:
    """The allow-list for `python` (a path or a name on PATH), worked out once per process."""
    exe = shutil.which(python) if "/" not in python else python
    if not exe or not os.access(exe, os.X_OK):
        raise LayoutError(f"the sandbox's Python {python!r} is not an executable")
    paths = _ask(exe)
    real_exe = os.path.realpath(paths["executable"] or exe)
    stdlib = {os.path.realpath(paths["stdlib"]), os.path.realpath(paths["platstdlib"])}
    tools = {}
    links: dict[str, str] = {}
    files: set[str] = {real_exe}
    for name in TOOLS:
        found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        if not found:
            raise LayoutError(f"{name} not found on this host (util-linux / a POSIX shell are needed)")
        tools[name] = found  # the name it has on PATH (sh -> dash: both exist inside)
        files.add(_resolve(found, links))
    binaries = sorted(files)
    modules = [str(p) for d in stdlib for p in _shared_objects(d)]
    for lib in _libraries([*binaries, *modules]):
        files.add(_resolve(lib, links))
    for path in (*DATA_DIRS, LOADER_CACHE):
        if os.path.exists(path) and os.access(path, os.R_OK):
            files.add(_resolve(path, links))
    binds = _outermost({*files, *stdlib})
    for location in PYTHON_LINKS:
        if location != real_exe and location not in binds:
            links[location] = real_exe
    links.setdefault("/etc/localtime", "/usr/share/zoneinfo/UTC")
    return Layout(
        python=real_exe,
        binds=tuple(binds),
        symlinks=tuple(sorted((target, location) for location, target in links.items())),
        tools=tools,
    )


def _ask(exe: str) -> dict[str, str]:
    try:
        done = subprocess.run(
            [exe, "-I", "-S", "-c", _ASK_PYTHON], capture_output=True, text=True, timeout=ASK_TIMEOUT_S, check=True
        )
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise LayoutError(f"cannot ask {exe} where its standard library is: {exc}") from exc
    if not isinstance(found, dict) or not all(isinstance(found.get(k), str) for k in ("stdlib", "platstdlib")):
        raise LayoutError(f"{exe} gave no standard library paths")
    return {k: str(found.get(k) or "") for k in ("executable", "stdlib", "platstdlib")}


def _shared_objects(directory: str) -> list[PurePosixPath]:
    dynload = PurePosixPath(directory) / "lib-dynload"
    if not os.path.isdir(dynload):
        return []
    return [dynload / name for name in sorted(os.listdir(dynload)) if name.endswith(".so")]


def _libraries(objects: list[str]) -> set[str]:
    """The shared libraries (and the loader) `ldd` resolves for `objects`; statically linked ones need none."""
    ldd = shutil.which("ldd")
    if not ldd:
        raise LayoutError("ldd not found on this host (libc-bin): the sandbox's libraries cannot be worked out")
    found: set[str] = set()
    for start in range(0, len(objects), 64):
        done = subprocess.run(
            [ldd, *objects[start : start + 64]], capture_output=True, text=True, timeout=ASK_TIMEOUT_S, check=False
        )
        for line in done.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > parts.index("=>") + 1:
                candidate = parts[parts.index("=>") + 1]
            elif parts and parts[0].startswith("/") and not parts[0].endswith(":"):
                candidate = parts[0]
            else:
                continue
            if candidate.startswith("/") and os.path.exists(candidate):
                found.add(candidate)
    return found


def _resolve(path: str, links: dict[str, str]) -> str:
    """`path`'s real location; every symlink met on the way is recorded in `links` (location -> target)."""
    current = PurePosixPath("/")
    pending = list(PurePosixPath(os.path.abspath(path)).parts[1:])
    hops = 0
    while pending:
        candidate = current / pending.pop(0)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise LayoutError(f"too many symlinks under {path}")
            target = os.readlink(candidate)
            links[str(candidate)] = target
            pending = list(PurePosixPath(target).parts) + pending
            if target.startswith("/"):
                current = PurePosixPath("/")
                pending = pending[1:]
            continue
        current = candidate if candidate.name != ".." else current.parent
    return str(current)


def _outermost(paths: set[str]) -> list[str]:
    """`paths` without those inside another entry (a bound directory already brings them), parents first."""
    kept: list[str] = []
    for path in sorted(paths, key=lambda p: (p.count("/"), p)):
        if not any(path.startswith(parent.rstrip("/") + "/") for parent in kept):
            kept.append(path)
    return kept
