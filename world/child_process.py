"""A helper process that says it is ready with one JSON line on its stdout (its URLs, keys, pid, ...).

Servers run in processes of their own because one in the caller's loop stops serving when the caller blocks in
`ray.get`. The parent waits on the pipe for that line (an event with a timeout, not a timer) and stops the child
with SIGTERM, then SIGKILL after 10 s. The child's side is `announce_and_wait`."""
from __future__ import annotations

import asyncio
import json
import os
import selectors
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0


def stop_process(proc: "subprocess.Popen[Any] | None", timeout_s: float) -> None:
    """SIGTERM (the child may save its state on it: anvil's --state, redis's AOF), then SIGKILL if it has not gone
    within `timeout_s`."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_parts(*parts: Any) -> None:
    """`stop()` each part that is there (not None), in order; one that fails is logged and the others still stop."""
    import logging

    for part in parts:
        if part is not None:
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001  (the others must still stop)
                logging.getLogger(__name__).warning("stopping %s: %s", type(part).__name__, exc)


def read_ready_line(fd: int, timeout_s: float) -> str:
    """One line from a detached process's ready pipe (its `--ready-fd`); '' on EOF (it died) or timeout."""
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout_s
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            buf += chunk
    return buf.split(b"\n", 1)[0].decode()


class ReadyLineProcess:
    """`argv` run from the repository root with the repository on PYTHONPATH; `what` names it in errors."""

    def __init__(self, argv: Sequence[str], what: str, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.argv = list(argv)
        self.what = what
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Start the child and return its ready line, parsed. Raises TimeoutError (the child is stopped) or
        RuntimeError (it exited first)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=None, text=True)
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(self.timeout_s):  # blocks on the child's pipe: the ready line is the event
                self.stop()
                raise TimeoutError(f"{self.what} did not report ready within {self.timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.what} exited with {self.proc.wait()} before it was ready")
        self.info = json.loads(line)
        return self.info

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None


async def announce_and_wait(ready: dict[str, Any]) -> None:
    """The child's side: print the ready line, then return on SIGINT or SIGTERM (the caller then shuts down)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps(ready), flush=True)
    await stop.wait()
