"""A port the world picked for itself can be taken by another process before the server binds it (the kernel hands
the same range to outgoing connections). The server is then started again on a newly picked port; a port the caller
gave, or the port of a restart, is never changed behind the caller's back."""
from __future__ import annotations

import socket

import pytest

from world.anvil_node import AnvilNode
from world.redis_server import RedisServer


@pytest.fixture
def taken_port():
    with socket.socket() as sock:  # what another process does with "our" port meanwhile
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_anvil_picks_another_port_when_the_one_it_picked_was_taken(taken_port):
    node = AnvilNode(31337)
    node.port = taken_port  # the race: picked, then taken before anvil binds it
    try:
        node.start()
        assert node.port != taken_port and node.call("eth_chainId") == hex(31337)
    finally:
        node.stop()
    with pytest.raises(RuntimeError, match="Address already in use"):
        AnvilNode(31337, port=taken_port).start()  # a port the caller chose is kept: the error says why


def test_redis_picks_another_port_at_first_start_only(taken_port, tmp_path):
    server = RedisServer(tmp_path / "a")
    server.port = taken_port
    try:
        server.start()
        assert server.port != taken_port and server.client().ping()
    finally:
        server.stop()
    with pytest.raises(RuntimeError, match="redis-server exited"):
        RedisServer(tmp_path / "b", port=taken_port).start()
