"""Kill a Ray session's processes once its driver is gone: ``python -m vibeset.scale.reaper SESSION_DIR``.

Started by ``ray_session`` with a pipe on stdin. While the driver lives, the reaper remembers the
session's process tree every second (processes naming the session directory, their descendants,
and ``ray::...`` processes holding files in it: a raylet that dies with the driver orphans its
renamed agents); when the pipe closes (the driver exited or was killed) it kills what it remembered
and what it still finds. It never kills itself or its parent (the driver, on a normal shutdown).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        table[int(entry.name)] = (parent, command)
    return table


def _holds_files_in(pid: int, directory: str) -> bool:
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}").startswith(directory.rstrip("/") + "/"):
                return True
        except OSError:
            continue
    return False


def session_tree(session_dir: str) -> set[int]:
    """Processes of the session: those naming its directory or (renamed ``ray::``) holding its files,
    and their descendants."""
    spared = {os.getpid(), os.getppid()}
    table = {pid: row for pid, row in _processes().items() if pid not in spared}
    found = {pid for pid, (_, command) in table.items()
             if session_dir in command or (command.startswith("ray::") and _holds_files_in(pid, session_dir))}
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in found and pid not in found}
        if not more:
            return found
        found |= more


def main(session_dir: str) -> None:
    known: set[int] = set()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
        known = session_tree(session_dir) | (known & set(_processes()))
    known |= session_tree(session_dir)  # now, before a dying raylet orphans its agents (renamed, so unnamed)
    time.sleep(0.5)  # a normal shutdown is already stopping them
    for pid in known | session_tree(session_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    main(sys.argv[1])
