"""Run many ``vibeset`` invocations fast: one process imports the CLI once, then forks per command.

Each child is a real process (its own file descriptors, exit code and ``--json`` stdout handling),
so what it prints is exactly what a user's shell would see; only the import cost is shared.
Protocol: one JSON request per line on stdin ({"args", "env", "cwd", "timeout"}), one JSON reply
per line on stdout ({"rc", "stdout", "stderr", "timed_out"}).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(request: dict, out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.setsid()
    os.chdir(request.get("cwd") or os.getcwd())
    os.environ.clear()
    os.environ.update(request["env"])
    code = 1
    try:
        from vibeset.cli import main

        main(request["args"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is what the test looks for
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    import vibeset.cli  # noqa: F401 - paid once, shared by every child

    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, out.fileno(), err.fileno())
            deadline, timed_out = time.monotonic() + request.get("timeout", 120), False
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.killpg(pid, signal.SIGKILL)
                    timed_out = True
                time.sleep(0.01)
            out.seek(0), err.seek(0)
            reply = {"rc": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                     "stdout": out.read().decode("utf-8", "replace"), "stderr": err.read().decode("utf-8", "replace")}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


class ForkRunner:
    """``runner(args, workspace=..., **env)`` -> (rc, stdout, stderr), each run a forked real process."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)})

    def __call__(self, *args: str, workspace: Path | None = None, timeout: float = 120, **env: str) -> dict:
        full = {k: v for k, v in os.environ.items() if k != "VIBESET_WORKSPACE"} | env
        if workspace is not None:
            full["VIBESET_WORKSPACE"] = str(workspace)
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"args": list(args), "env": full, "cwd": str(self.cwd), "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(30)


if __name__ == "__main__":
    _serve()
