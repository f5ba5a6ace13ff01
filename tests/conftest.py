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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance per test session (starting one costs ~2.5 s; spec/ray.md §9), lean and quiet, with
    a namespace of its own so named actors never collide with a running system."""
    import os
    import uuid

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    namespace = f"test-{uuid.uuid4().hex[:8]}"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="ERROR",
             log_to_driver=False, namespace=namespace, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield namespace
    ray.shutdown()
