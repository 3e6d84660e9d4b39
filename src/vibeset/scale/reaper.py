"""Kill a Ray session's processes once its driver is gone: ``python -m vibeset.scale.reaper DRIVER_PID``.

Started by ``ray_session`` before ``ray.init``, with a pipe on stdin: a driver killed while Ray is
still starting leaves processes too. Until the driver writes its session directory to the pipe,
the session is the one Ray names after the driver (``session_<date>_<pid>``). While the driver
lives, the reaper remembers the session's process tree every second: processes naming the session
directory, their descendants, and ``ray::...`` processes holding files in it (a raylet that dies
with the driver orphans its renamed agents). When the pipe closes (the driver exited or was
killed) it kills what it remembered and what it still finds. It never kills itself or its parent
(the driver, on a normal shutdown).
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from pathlib import Path
from typing import Callable


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


def _holds_files_in(pid: int, names_session: Callable[[str], bool]) -> bool:
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if names_session(os.readlink(f"/proc/{pid}/fd/{descriptor}")):
                return True
        except OSError:
            continue
    return False


def session_tree(names_session: Callable[[str], bool]) -> set[int]:
    """Processes of the session: those naming its directory or (renamed ``ray::``) holding its files,
    and their descendants."""
    spared = {os.getpid(), os.getppid()}
    table = {pid: row for pid, row in _processes().items() if pid not in spared}
    found = {pid for pid, (_, command) in table.items()
             if names_session(command) or (command.startswith("ray::") and _holds_files_in(pid, names_session))}
    while True:
        more = {pid for pid, (parent, _) in table.items() if parent in found and pid not in found}
        if not more:
            return found
        found |= more


def _matcher(driver: int, session_dir: str) -> Callable[[str], bool]:
    """Does a command line or file path name the session: its exact directory once known, else Ray's
    name for the driver's session."""
    name = re.escape(session_dir.rstrip("/")) if session_dir else rf"/session_[0-9_-]+_{driver}"
    pattern = re.compile(rf"{name}(/|\s|$)")
    return lambda text: pattern.search(text) is not None


def main(driver: int) -> None:
    known: set[int] = set()
    received = b""
    names_session = _matcher(driver, "")
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                break
            received += chunk
            names_session = _matcher(driver, received.decode("utf-8", "replace").strip())
        known = session_tree(names_session) | (known & set(_processes()))
    known |= session_tree(names_session)  # now, before a dying raylet orphans its agents
    time.sleep(0.5)  # a normal shutdown is already stopping them
    for pid in known | session_tree(names_session):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
