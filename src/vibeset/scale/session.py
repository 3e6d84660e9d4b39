"""One way to start parallel work that leaves nothing behind: a Ray session and a process pool.

``ray_session`` starts Ray once (a small object store: actors exchange only shard lists and
counts), shuts it down on exit, and starts a reaper process that watches the driver through a
pipe: when the driver dies, even by ``kill -9``, the pipe closes and the reaper kills every
process of the session (raylet, GCS, agents, workers). ``process_pool`` workers ask the kernel to
kill them when their parent dies (``PR_SET_PDEATHSIG``), so a killed ``vibeset label`` does not
leave its workers labelling.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
from typing import Any, Callable, Iterator

#: Actors exchange only shard lists and counts, so a small object store is plenty.
OBJECT_STORE_BYTES = 96 * 2**20
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when ``parent`` dies (no-op elsewhere). A parent that died while
    this process was still starting is noticed here: the process exits at once."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)


def _initialise(parent: int, initializer: Callable[..., None] | None, args: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*args)


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple = ()
) -> futures.ProcessPoolExecutor:
    """A spawn-context pool whose workers die with the driver."""
    return futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_initialise,
        initargs=(os.getpid(), initializer, initargs),
    )


@contextlib.contextmanager
def ray_session(num_cpus: int | None = None) -> Iterator[Any]:
    """Use the Ray already initialised (or ``RAY_ADDRESS``), else start a local one; stop only what we started.

    Ray's own log lines go to stderr, never stdout, so ``--json`` output stays one object.
    """
    import ray

    if ray.is_initialized():
        yield ray
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False, configure_logging=False)
        try:
            yield ray
        finally:
            ray.shutdown()
        return
    reaper = _start_reaper()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 1,
                object_store_memory=OBJECT_STORE_BYTES,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        _tell_reaper(reaper, _session_dir(ray))
        yield ray
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            ray.shutdown()
        if reaper is not None:
            reaper.stdin.close()  # the reaper finds nothing left and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                reaper.wait(timeout=10)


def _session_dir(ray: Any) -> str | None:
    with contextlib.suppress(Exception):
        return ray._private.worker._global_node.get_session_dir_path()  # noqa: SLF001 - no public accessor
    return None


def _start_reaper() -> subprocess.Popen | None:
    if not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen(
        [sys.executable, "-m", "vibeset.scale.reaper", str(os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _tell_reaper(reaper: subprocess.Popen | None, session_dir: str | None) -> None:
    """The exact session directory, in case Ray stops naming it after the driver."""
    if reaper is not None and session_dir:
        with contextlib.suppress(OSError):
            reaper.stdin.write(session_dir.encode() + b"\n")
            reaper.stdin.flush()
