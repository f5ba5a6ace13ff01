"""Shared test fixtures: paths to the project's data, and the real payloads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import core  # noqa: F401  (installs the decimal context)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def exchange_info() -> dict:
    return json.loads((DATA / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json").read_text())


@pytest.fixture(scope="session")
def depth_snapshot() -> dict:
    return json.loads((DATA / "binance" / "depth_snapshot_BTCUSDT.json").read_text())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server (AOF, appendfsync always) for the whole test session."""
    from world.redis_server import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server):
    """A client on a flushed database: each test starts from an empty store."""
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()
