"""The local redis-server: starts, persists transactions through a SIGKILL (AOF), restarts on the same data."""
from __future__ import annotations

import subprocess

import pytest
import redis

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


def test_a_store_on_another_address_with_a_password(tmp_path):
    """As the external world's store: listens on its host only, asks for its password, keeps it off the command
    line (ps shows a command line to every user of the machine), and keeps both across a restart."""
    server = RedisServer(tmp_path, host="127.0.0.8", password="not-on-the-command-line").start()
    try:
        assert server.url == f"redis://127.0.0.8:{server.port}/0"  # no password in a URL that is logged
        assert server.client().ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.8", port=server.port).ping()
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=server.port, password=server.password, socket_connect_timeout=2).ping()
        argv = subprocess.run(["ps", "-o", "args=", "-p", str(server.process.pid)], capture_output=True,
                              text=True).stdout
        assert argv and server.password not in argv
        server.restart()
        assert server.client().ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.8", port=server.port).ping()
    finally:
        server.stop()


def test_fixture_gives_an_empty_database(redis_client):
    assert redis_client.dbsize() == 0
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"


def test_the_automatic_aof_rewrite_waits_for_a_large_aof(tmp_path):
    """Redis's default (64 MB) would rewrite every ~130,000 orders; the store leaves rewrites to the operator."""
    with RedisServer(tmp_path) as server:
        assert server.client().config_get("auto-aof-rewrite-min-size") == {"auto-aof-rewrite-min-size": str(2**30)}
    with RedisServer(tmp_path / "small", aof_rewrite_min_size="5mb") as server:
        assert server.client().config_get("auto-aof-rewrite-min-size") == {"auto-aof-rewrite-min-size": str(5 * 2**20)}


def test_compacting_shrinks_the_aof_and_keeps_every_write(tmp_path):
    from world.redis_server import rewrite_aof

    server = RedisServer(tmp_path).start()
    try:
        r = server.client()
        for i in range(300):  # the same key rewritten: the AOF holds 300 commands, the data one value
            r.set("state", "x" * 1000 + str(i))
        r.rpush("outbox", *range(50))
        done = rewrite_aof(r, timeout_s=60)
        assert done["aof_mb_after"] < done["aof_mb_before"] / 10
        assert done["seconds"] >= 0
        assert r.info("persistence")["aof_last_bgrewrite_status"] == "ok"
        r.set("after", "1")  # written after the rewrite: it must be in the new AOF too
        server.kill()
        server.start()
        r = server.client()
        assert r.get("state") == b"x" * 1000 + b"299"
        assert r.lrange("outbox", 0, -1) == [str(i).encode() for i in range(50)]
        assert r.get("after") == b"1"
    finally:
        server.stop()


def test_compacting_a_store_without_aof_is_refused(tmp_path):
    import pytest

    from world.redis_server import rewrite_aof

    with RedisServer(tmp_path) as server:
        r = server.client()
        r.config_set("appendonly", "no")
        with pytest.raises(RuntimeError, match="does not keep an AOF"):
            rewrite_aof(r)


def test_the_compact_store_command_finds_the_running_store(tmp_path, capsys):
    from cli import main
    from world.run_file import write_run

    state = tmp_path / "state"
    assert main(["compact-store", "--state-dir", str(state)]) == 2  # nothing runs there
    assert "no running system" in capsys.readouterr().err
    with RedisServer(tmp_path / "redis") as server:
        server.client().set("k", "v" * 10_000)
        write_run(state, phase="up", redis_url=server.url)
        assert main(["compact-store", "--state-dir", str(state)]) == 0
        assert "store compacted: AOF" in capsys.readouterr().out
        assert server.client().get("k") == b"v" * 10_000
