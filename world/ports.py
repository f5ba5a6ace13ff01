"""Ports of the local world. `port_is_free` keeps a part on the port it had before a restart (its URLs stay the same)
and fails fast, naming the setting, when a fixed port is taken; `start_retrying_port` starts a server again on a
new port when the one picked was taken first.

SO_REUSEADDR, as the servers bind: a port lingering in TIME_WAIT is free for them, so it is free here."""
from __future__ import annotations

import socket
from typing import Callable, TypeVar

T = TypeVar("T")

#: Where the local world's parts listen and are reached (redis, anvil, the simulator; the gateway and the HTTP
#: service unless the config names a host). Only world/ and tests/ know it: everything else takes addresses from
#: the config (tests/unit/test_no_loopback.py).
LOOPBACK = "127.0.0.1"


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
            return True
        except OSError:
            return False


class PortTaken(RuntimeError):
    """A server could not bind its port: another process has it."""


def start_retrying_port(start_once: Callable[[], T], repick: Callable[[], None] | None, tries: int = 3) -> T:
    """Start a server; if it raises PortTaken and the port was picked by us (`repick` given), pick a new one and
    start again. A port picked with free_port() can be handed to another process before the server binds it: the
    kernel gives the same range to outgoing connections (Ray's, the clients')."""
    for attempt in range(tries):
        try:
            return start_once()
        except PortTaken:
            if repick is None or attempt == tries - 1:
                raise
            repick()
    raise AssertionError("unreachable")  # pragma: no cover
