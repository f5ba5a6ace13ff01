"""The local redis-server: starts, persists transactions through a SIGKILL (AOF), restarts on the same data."""
from __future__ import annotations

from world.redis_server import RedisServer


def test_transactions_survive_a_kill(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        r = server.client()
        for i in range(200):
            p = r.pipeline(transaction=True)
            p.set("state:seq", i)
            p.rpush("outbox", i)
            p.execute()
        server.kill()
        server.start()
        r = server.client()
        assert int(r.get("state:seq")) == 199
        assert r.llen("outbox") == 200
    finally:
        server.stop()


def test_fixture_gives_an_empty_database(redis_client):
    assert redis_client.dbsize() == 0
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"
