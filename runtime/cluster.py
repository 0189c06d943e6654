"""Tracks on a Ray cluster: each track's persistent kernel lives inside a Ray actor.

The graph, its checkpoints and the run folder stay with the driver. An actor owns one
`KernelSession` on whatever node Ray placed it; `RayKernel` is the driver's handle to it and
is used exactly like a local `KernelSession` (start / execute / alive / shutdown), so the
nodes do not know where their cells run.

Files: when the node sees the driver's run folder (a shared filesystem, or the same machine)
the kernel works in it directly. When it does not, the actor keeps a mirror of the run folder
on its node: the driver sends what changed before each cell (the modules an attempt writes,
task.json, ...) and the actor sends back what the cell wrote (result.json, oof.npy, fold
models, ...), so the driver's run folder is the same either way. The task's data then goes
through the object store once per run and is unpacked once per node.

A dead actor (its process, its node) is an infrastructure failure, not the generated code's:
a new actor is started, on another node when there is one, and the cell runs again, at most
`max_retries` times. A kernel runs in its own session and polls its parent (jupyter_client's
JPY_PARENT_PID), so it exits with the actor that started it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import secrets
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.data import TaskInputError
from runtime.kernel import ExecResult, KernelSession, KernelStartError

ADDRESS_ENV = "IML_RAY_ADDRESS"
# Treat every node as not sharing the driver's files, even one that does: what a cluster
# without a shared filesystem does, on one machine (tests, and checking a setup).
ISOLATE_ENV = "IML_RAY_ISOLATE"
INSTALL_HINT = "Ray is not installed: pip install -e '.[cluster]' (or pip install 'ray[default]') on the driver and every node"
GPU_TRACKS = ("pretrained", "neural")  # tracks whose recipes use a GPU when they get one
PROBE = ".iml-ray-probe"  # a file only the driver's run folder holds: a node that reads it shares the folder
# What never travels between the driver and an actor: the driver's own records, node-local caches.
DRIVER_ONLY = {"events.jsonl", "checkpoints.sqlite", "checkpoints.sqlite-wal", "checkpoints.sqlite-shm", "run.json",
               "llm.json", PROBE}
NODE_LOCAL = ("cache",)
RESULT_GRACE_S = 120.0  # beyond a cell's own timeout: a kernel restart, file transfer, a busy node


def require_ray():
    """The ray module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TaskInputError(INSTALL_HINT) from None
    return ray


_connect_lock = threading.Lock()
_started_here = False


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto": the one `ray start` runs here, "local": start one
    in this process, else host:port or ray://...); a no-op when this process already joined one."""
    global _started_here
    ray = require_ray()
    with _connect_lock:
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        unreachable = _unreachable(address)
        if unreachable:
            raise TaskInputError(f"could not join the Ray cluster at {address!r}: {unreachable} "
                                 "(start one with `ray start --head`, or use --ray local)")
        try:
            # "local" is a new cluster even where another one runs (or a dead one left its address)
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TaskInputError(f"could not join the Ray cluster at {address!r}: {detail} (start one with `ray start "
                                 "--head`, or use --ray local; a cluster with token authentication needs "
                                 "RAY_AUTH_MODE=token and its token here)") from None
        _started_here = True


def cluster_cpus(address: str) -> float:
    """The CPUs of the cluster at address (joined, and left joined for what comes next)."""
    connect(address)
    return float(require_ray().cluster_resources().get("CPU", 1.0))


PROBE_TIMEOUT_S = 5.0


def _unreachable(address: str) -> str | None:
    """Why host:port cannot be the cluster's head, or None: ray.init retries a dead address for
    minutes, so a port nothing listens on is told in one line first."""
    if address in ("auto", "local") or address.startswith("ray://") or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return f"{port!r} is not a port number"
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as e:
        return f"nothing answers on {host}:{port} ({e.strerror or type(e).__name__})"


def disconnect() -> None:
    """Leave the cluster this process joined (stopping it when it was started here)."""
    global _started_here
    ray = require_ray()
    with _connect_lock:
        if _started_here and ray.is_initialized():
            ray.shutdown()
        _started_here = False


# -- resources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackResources:
    num_cpus: float
    num_gpus: float
    threads: int  # the kernel's thread count (OMP/MKL...): its CPUs, at least one


def track_resources(tracks: list[str], cluster: dict[str, float], *, cpus_per_track: float | None = None,
                    max_threads: int | None = None) -> dict[str, TrackResources]:
    """What each planned track asks Ray for.

    CPUs: `cpus_per_track` when given (a batch shares the cluster between its tasks), else the
    cluster's CPUs split evenly over the tracks, whole CPUs when there are enough. GPUs go to
    the tracks that use them: one each while there are enough, else an even share.
    """
    n = max(1, len(tracks))
    cpus = float(cluster.get("CPU", 1.0))
    if cpus_per_track is None:
        share = cpus / n
        cpus_per_track = max(1.0, float(int(share))) if share >= 1 else max(0.1, round(share, 2))
    gpu_tracks = [t for t in tracks if t in GPU_TRACKS]
    gpus = float(cluster.get("GPU", 0.0))
    gpu_share = 0.0 if not gpu_tracks or gpus <= 0 else min(1.0, round(gpus / len(gpu_tracks), 2))
    out = {}
    for t in tracks:
        threads = max(1, int(cpus_per_track))
        if max_threads is not None:
            threads = max(1, min(threads, max_threads))
        out[t] = TrackResources(num_cpus=cpus_per_track, num_gpus=gpu_share if t in gpu_tracks else 0.0, threads=threads)
    return out


# -- files ----------------------------------------------------------------------------------


Snapshot = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)


def _travels(rel: str, track: str | None) -> bool:
    parts = rel.split("/")
    if parts[0] in NODE_LOCAL or (len(parts) == 1 and parts[0] in DRIVER_ONLY):
        return False
    if len(parts) == 1:
        return True
    # only the track's own folder: other tracks' attempts are no business of this kernel
    return track is None or (parts[0] == "tracks" and len(parts) > 2 and parts[1] == track)


def snapshot(root: Path, track: str | None) -> Snapshot:
    out: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in NODE_LOCAL]
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            if not _travels(rel, track):
                continue
            with contextlib.suppress(OSError):
                st = os.stat(os.path.join(dirpath, name))
                out[rel] = (st.st_size, st.st_mtime_ns)
    return out


def changed(root: Path, before: Snapshot, track: str | None) -> tuple[dict[str, bytes], Snapshot]:
    """The files under root that differ from `before` (contents), and the new snapshot."""
    now = snapshot(root, track)
    files = {}
    for rel, stat in now.items():
        if before.get(rel) != stat:
            with contextlib.suppress(OSError):
                files[rel] = (root / rel).read_bytes()
    return files, now


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader never sees half a result.json


def pack_folder(folder: Path) -> bytes:
    """The task folder as one tar (data files are often compressed already: no gzip)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def folder_listing(folder: Path) -> list[tuple[str, int]]:
    """The task folder's top-level files and sizes: how a node tells it sees the same data."""
    try:
        return sorted((p.name, p.stat().st_size) for p in folder.iterdir() if p.is_file())
    except OSError:
        return []


def node_data_dir(digest: str, packed_ref: list) -> Path:
    """The task's data on this node, unpacked from the object store once per node (a lock keeps
    two actors on one node from unpacking it twice)."""
    import ray

    base = Path(tempfile.gettempdir()) / "iml-ray" / "data"
    base.mkdir(parents=True, exist_ok=True)
    target = base / digest
    with open(base / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            partial = base / f"{digest}.partial"
            if partial.exists():
                import shutil

                shutil.rmtree(partial)
            partial.mkdir()
            with tarfile.open(fileobj=io.BytesIO(ray.get(packed_ref[0])), mode="r") as tar:
                tar.extractall(partial, filter="data")
            (partial / ".complete").write_text("")
            os.replace(partial, target)
    return target


# -- the actor ------------------------------------------------------------------------------


class TrackKernelActor:
    """Owns one track's KernelSession on the node Ray placed it (wrapped by ray.remote in RayPool)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.track = spec["track"]
        self.driver_root = spec["run_dir"]
        probe = Path(self.driver_root) / PROBE
        self.shared = not spec["isolate"] and probe.is_file() and probe.read_text() == spec["probe"]
        if self.shared:
            self.root = Path(self.driver_root)
        else:
            self.root = Path(tempfile.mkdtemp(prefix=f"iml-{self.track}-"))
        self.spec = spec
        self.seen: Snapshot = {}
        self.session: KernelSession | None = None

    def where(self) -> dict[str, Any]:
        import ray

        context = ray.get_runtime_context()
        return {"node": context.get_node_id(), "host": socket.gethostname(), "pid": os.getpid(),
                "shared": self.shared, "root": str(self.root), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def kernel_pid(self) -> int | None:
        km = self.session._km if self.session is not None else None
        provisioner = getattr(km, "provisioner", None) if km is not None else None
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    def _receive(self, files: dict[str, bytes]) -> None:
        if self.shared or not files:
            return
        write_files(self.root, files)
        if "task.json" in files:  # the data is where this node keeps it, not where the driver does
            task = json.loads(files["task.json"])
            task["task_dir"] = str(self._data_dir(task["task_dir"]))
            (self.root / "task.json").write_text(json.dumps(task, indent=2))
        self.seen = snapshot(self.root, self.track)

    def _data_dir(self, driver_task_dir: str) -> Path:
        own = Path(driver_task_dir)
        if not self.spec["isolate"] and own.is_dir() and folder_listing(own) == [tuple(x) for x in self.spec["listing"]]:
            return own  # the data is on a path this node sees (shared storage)
        return node_data_dir(self.spec["data_digest"], self.spec["data_ref"])

    def _send_back(self) -> dict[str, bytes]:
        if self.shared:
            return {}
        files, self.seen = changed(self.root, self.seen, self.track)
        files.pop("task.json", None)  # this node's rewrite, never the driver's business
        return files

    def _local(self, text: str) -> str:
        return text if self.shared else text.replace(self.driver_root, str(self.root))

    def _driver(self, text: str | None) -> str | None:
        return text if self.shared or text is None else text.replace(str(self.root), self.driver_root)

    def start(self, files: dict[str, bytes]) -> tuple[str | None, dict[str, bytes]]:
        """Start the kernel with the harness loaded: (error or None, files it wrote)."""
        self._receive(files)
        startup = self._local(self.spec["startup_code"])
        self.session = KernelSession(self.root, threads=self.spec["threads"], memory_limit_mb=self.spec["memory_limit_mb"],
                                     startup_code=startup)
        try:
            self.session.start()
        except KernelStartError as e:
            return self._driver(str(e)), self._send_back()
        return None, self._send_back()

    def execute(self, code: str, timeout: float, files: dict[str, bytes]) -> tuple[dict[str, Any], dict[str, bytes]]:
        self._receive(files)
        assert self.session is not None
        result = self.session.execute(self._local(code), timeout=timeout)
        raw = result.model_dump()
        for key in ("output", "error_value", "traceback"):
            raw[key] = self._driver(raw[key])
        return raw, self._send_back()

    def stop(self) -> None:
        if self.session is not None:
            self.session.shutdown()
            self.session = None
        if not self.shared:
            import shutil

            shutil.rmtree(self.root, ignore_errors=True)


# -- the driver's side ----------------------------------------------------------------------


def _actor_died_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rex

    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
             "ObjectLostError", "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


class RayPool:
    """The run's view of the cluster: resources per track, the data in the object store, actors."""

    def __init__(self, address: str, run_dir: str | Path, *, emit: Callable[..., None], max_retries: int = 2,
                 cpus_per_track: float | None = None, max_threads: int | None = None,
                 memory_limit_mb: int | None = None) -> None:
        connect(address)
        self.ray = require_ray()
        self.run_dir = Path(run_dir).resolve()
        self.emit = emit
        self.max_retries = max_retries
        self.cpus_per_track = cpus_per_track
        self.max_threads = max_threads
        self.memory_limit_mb = memory_limit_mb
        self.isolate = os.environ.get(ISOLATE_ENV, "").strip() not in ("", "0", "false")
        self._lock = threading.Lock()
        self._data: tuple[str, Any] | None = None
        self._probe = secrets.token_hex(8)
        (self.run_dir / PROBE).write_text(self._probe)
        self.cluster = {k: float(v) for k, v in self.ray.cluster_resources().items()}
        self._actor_class = self.ray.remote(TrackKernelActor)
        self.resources: dict[str, TrackResources] = {}

    def resources_for(self, track: str) -> TrackResources:
        """The track's share, planned from blueprint.json on first use (the plan is written
        before any kernel starts; a track it does not list, e.g. one a resumed run adds, gets
        the share of a plan with it added)."""
        with self._lock:
            if track not in self.resources:
                try:
                    planned = [t["track"] for t in json.loads((self.run_dir / "blueprint.json").read_text())["tracks"]]
                except (OSError, ValueError, KeyError):
                    planned = []
                planned = planned if track in planned else [*planned, track]
                self.resources = {**track_resources(planned, self.cluster, cpus_per_track=self.cpus_per_track,
                                                    max_threads=self.max_threads), **self.resources}
            return self.resources[track]

    def data(self, task_dir: Path) -> tuple[str, list, list]:
        """The task folder in the object store (put once per run): digest, [ref], listing."""
        with self._lock:
            if self._data is None:
                packed = pack_folder(task_dir)
                digest = hashlib.sha256(packed).hexdigest()[:16]
                self._data = (digest, self.ray.put(packed))
            return self._data[0], [self._data[1]], folder_listing(task_dir)

    def kernel(self, track: str, startup_code: str) -> RayKernel:
        return RayKernel(self, track, startup_code)

    def alive_nodes(self) -> list[str]:
        return [n["NodeID"] for n in self.ray.nodes() if n.get("Alive")]


class RayKernel:
    """A track's kernel in a Ray actor, used like a KernelSession by the nodes."""

    def __init__(self, pool: RayPool, track: str, startup_code: str) -> None:
        self.pool = pool
        self.track = track
        self.startup_code = startup_code
        self.actor: Any = None
        self.where: dict[str, Any] = {}
        self._sent: Snapshot = {}
        self._dead_nodes: set[str] = set()
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self.actor is not None

    def _spec(self) -> dict[str, Any]:
        task_dir = Path(json.loads((self.pool.run_dir / "task.json").read_text())["task_dir"])
        digest, ref, listing = self.pool.data(task_dir) if self._needs_data() else ("", [], folder_listing(task_dir))
        res = self.pool.resources_for(self.track)
        return {"track": self.track, "run_dir": str(self.pool.run_dir), "probe": self.pool._probe,
                "isolate": self.pool.isolate, "threads": res.threads, "memory_limit_mb": self.pool.memory_limit_mb,
                "startup_code": self.startup_code, "data_digest": digest, "data_ref": ref, "listing": listing}

    def _needs_data(self) -> bool:
        # Put the data in the object store only when some node may need it: a cluster of one
        # machine that shares the folder never does.
        return self.pool.isolate or len(self.pool.alive_nodes()) > 1

    def _options(self) -> dict[str, Any]:
        res = self.pool.resources_for(self.track)
        options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus, "max_restarts": 0}
        if self._dead_nodes:
            others = [n for n in self.pool.alive_nodes() if n not in self._dead_nodes]
            if others:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=others[0], soft=True)
        return options

    def start(self) -> None:
        if self.actor is not None:
            return
        errors = _actor_died_errors()
        for _ in range(self.pool.max_retries + 1):
            try:
                self._spawn()
                return
            except errors as e:
                self._lost(e, during="start")
        raise KernelStartError(f"the track's Ray actor died {self.pool.max_retries + 1} times while starting")

    def _spawn(self) -> None:
        ray = self.pool.ray
        res = self.pool.resources_for(self.track)
        self.actor = self.pool._actor_class.options(**self._options()).remote(self._spec())
        self.where = ray.get(self.actor.where.remote())
        self._sent = {}
        error, back = ray.get(self.actor.start.remote(self._outgoing()))
        self._incoming(back)
        pid = ray.get(self.actor.kernel_pid.remote())
        self.pool.emit("actor", track=self.track, node=self.where["node"][:12], host=self.where["host"],
                       pid=self.where["pid"], kernel_pid=pid, shared_files=self.where["shared"],
                       num_cpus=res.num_cpus, num_gpus=res.num_gpus, gpu_ids=self.where["gpu_ids"],
                       restarts=self.restarts)
        if error is not None:
            self._kill()
            raise KernelStartError(error)

    def _outgoing(self) -> dict[str, bytes]:
        if self.where.get("shared"):
            return {}
        files, self._sent = changed(self.pool.run_dir, self._sent, self.track)
        return files

    def _incoming(self, files: dict[str, bytes]) -> None:
        if not files:
            return
        write_files(self.pool.run_dir, files)
        self._sent.update({rel: stat for rel, stat in snapshot(self.pool.run_dir, self.track).items() if rel in files})

    def _lost(self, error: BaseException, during: str) -> None:
        node = self.where.get("node")
        if node:
            self._dead_nodes.add(node)
        self.restarts += 1
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        self.pool.emit("infrastructure", track=self.track, what=f"the track's Ray actor died during {during}",
                       detail=detail, node=(node or "")[:12], retry=self.restarts)
        self._kill()

    def execute(self, code: str, timeout: float = 600.0) -> ExecResult:
        """Run one cell in the actor's kernel; a dead actor is replaced and the cell run again."""
        ray = self.pool.ray
        errors = _actor_died_errors()
        began = time.monotonic()
        for _ in range(self.pool.max_retries + 1):
            try:
                if self.actor is None:
                    self._spawn()
                raw, back = ray.get(self.actor.execute.remote(code, timeout, self._outgoing()),
                                    timeout=timeout + RESULT_GRACE_S)
                self._incoming(back)
                return ExecResult(**raw)
            except errors as e:
                self._lost(e, during="a cell")
            except KernelStartError as e:
                return ExecResult(status="error", output="", error_name="KernelStartError", error_value=str(e),
                                  duration_s=time.monotonic() - began)
            except ray.exceptions.GetTimeoutError as e:
                self._lost(e, during="a cell (no answer within its timeout)")
        return ExecResult(status="died", output="", error_name="KernelDied",
                          error_value=f"the track's Ray actor died {self.pool.max_retries + 1} times (an infrastructure "
                                      "failure, not the code's); see the 'infrastructure' events",
                          duration_s=time.monotonic() - began)

    def _kill(self) -> None:
        actor, self.actor = self.actor, None
        if actor is not None:
            with contextlib.suppress(Exception):
                self.pool.ray.kill(actor, no_restart=True)

    def shutdown(self) -> None:
        actor = self.actor
        if actor is None:
            return
        with contextlib.suppress(Exception):
            self.pool.ray.get(actor.stop.remote(), timeout=30)
        self._kill()
