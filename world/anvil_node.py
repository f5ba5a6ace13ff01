"""One anvil node as a child process: the local stand-in for an EVM chain (Arbitrum, Base).

The binary is started directly (not through npm's JS wrapper) so that SIGTERM reaches anvil itself and no node
process is left behind (spec/chain.md §2). Readiness is polled on `eth_chainId`: anvil gives no other signal.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from world.child_process import stop_process
from world.ports import LOOPBACK, PortTaken, start_retrying_port
from world.redis_server import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_ENV = "INDEXMAKER_ANVIL"


def anvil_binary() -> str:
    """node_modules/@foundry-rs/anvil-<platform>/bin/anvil, or $INDEXMAKER_ANVIL."""
    if os.environ.get(ANVIL_ENV):
        return os.environ[ANVIL_ENV]
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    path = REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-linux-{arch}" / "bin" / "anvil"
    if not path.is_file():
        raise FileNotFoundError(f"anvil not found at {path}: run `npm ci --ignore-scripts` in {REPO_ROOT}")
    return str(path)


def rpc(url: str, method: str, params: list | None = None, timeout_s: float = 5.0) -> object:
    """A bare JSON-RPC call (urllib): used before web3 is worth creating, and for anvil_* admin methods."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        answer = json.loads(resp.read())
    if "error" in answer:
        raise RuntimeError(f"{method} failed: {answer['error']}")
    return answer.get("result")


class AnvilNode:
    """Start, stop (SIGTERM) and query one anvil on `host` (the loopback by default)."""

    def __init__(self, chain_id: int, *, port: int | None = None, accounts: int = 10, block_time_s: float | None = None,
                 slots_in_an_epoch: int | None = None, state_file: Path | None = None,
                 mnemonic: str | None = None, state_interval_s: int | None = None, host: str = LOOPBACK) -> None:
        """`state_file`: anvil's `--state` (loaded at start when it exists, written on SIGTERM: blocks, receipts,
        balances and contracts survive a restart); `state_interval_s` also writes it every so many seconds, so a
        crash (SIGKILL) loses at most that much."""
        self.chain_id = chain_id
        self.host = host
        self._port_chosen_here = port is None  # a port we picked may be taken before anvil binds it: pick again
        self.port = port or free_port(host)
        self.accounts = accounts
        self.block_time_s = block_time_s
        self.slots_in_an_epoch = slots_in_an_epoch
        self.state_file = state_file
        self.mnemonic = mnemonic
        self.state_interval_s = state_interval_s
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None  # a file, not a pipe: a full pipe would block anvil

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        cmd = [anvil_binary(), "--host", self.host, "--port", str(self.port), "--chain-id", str(self.chain_id),
               "--accounts", str(self.accounts), "--silent"]
        if self.mnemonic:
            cmd += ["--mnemonic", self.mnemonic]
        if self.block_time_s is not None:
            cmd += ["--block-time", str(self.block_time_s)]
        if self.slots_in_an_epoch is not None:
            cmd += ["--slots-in-an-epoch", str(self.slots_in_an_epoch)]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
            if self.state_interval_s is not None:
                cmd += ["--state-interval", str(int(self.state_interval_s))]
        return cmd

    def start(self, timeout_s: float = 10.0) -> "AnvilNode":
        """Start and wait until it answers its chain id. A port picked here (none given) can be handed to another
        process between the pick and anvil's bind (the kernel gives the same range to outgoing connections): then
        anvil exits with "Address already in use" and it is started again on a newly picked port (3 tries)."""
        return start_retrying_port(lambda: self._start_once(timeout_s),
                                   self._repick if self._port_chosen_here else None)

    def _repick(self) -> None:
        self.port = free_port(self.host)

    def _start_once(self, timeout_s: float) -> "AnvilNode":
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace")
                self._stderr.close()
                self._stderr = None
                error = PortTaken if "Address already in use" in err else RuntimeError
                raise error(f"anvil (chain {self.chain_id}, port {self.port}) exited with "
                            f"{self.process.returncode}: {err.strip()}")
            try:
                answer = rpc(self.url, "eth_chainId", timeout_s=0.5)
                if int(str(answer), 16) != self.chain_id:
                    raise RuntimeError(f"port {self.port} answers chain {answer}, not {self.chain_id}")
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"anvil on port {self.port} not ready after {timeout_s} s") from None
                time.sleep(0.02)  # polling a child process that has no readiness event to wait on

    def call(self, method: str, *params: object) -> object:
        return rpc(self.url, method, list(params))

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM (anvil writes its --state dump on it), then SIGKILL if it does not go."""
        stop_process(self.process, timeout_s)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.process = None

    def __enter__(self) -> "AnvilNode":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
