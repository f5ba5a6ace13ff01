"""The run file (`<state dir>/run.json`): how `indexmaker status`, `down` and `invoice` find a system that
`indexmaker up` started in another process.

It names the service's pid, its phase, where Ray is, the actors, the URLs and the world's OS processes (so `down`
can end them if the service died). No secret. Written atomically: a reader never sees half of it."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
PHASES = ("starting", "up", "stopping", "down", "failed")


def run_path(state_dir: Path) -> Path:
    return Path(state_dir).expanduser() / RUN_FILE


def read_run(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(run_path(state_dir).read_text())
    except FileNotFoundError:
        return None


def write_run(state_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into the run file (stamped with the time); returns the whole record."""
    if "phase" in fields and fields["phase"] not in PHASES:
        raise ValueError(f"unknown phase {fields['phase']!r}")
    path = run_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**(read_run(state_dir) or {}), **fields, "updated_at": time.time()}
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return record


def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists (and is not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pid_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` (not our child) exits: a pidfd becomes readable when it does. True if it exited."""
    import select

    try:
        fd = os.pidfd_open(int(pid))
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable) or not pid_alive(pid)
    finally:
        os.close(fd)
