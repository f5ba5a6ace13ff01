"""Is a port free to listen on? Used to keep a part of the world on the port it had before a restart (URLs then
stay the same) and to fail fast, with the setting's name, when a fixed port is taken.

SO_REUSEADDR as the servers themselves bind (redis, anvil, aiohttp, websockets all set it): a port whose last
connections linger in TIME_WAIT after a clean stop is free for them, so it is free here; a port another process
listens on is not.
"""
from __future__ import annotations

import socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
            return True
        except OSError:
            return False
