"""`indexmaker reconcile`: the reserves check (actors/reserves_probe.py, core/reserves.py) on the running system
a state dir's run file describes, from a Ray driver of its own (like `status`), without the monitor: it works while
the monitor is down, and only calls read-only methods.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from core.reserves import ReserveRow


def system_running(run: dict[str, Any] | None) -> bool:
    from world.run_file import pid_alive

    return run is not None and run.get("phase") == "up" and pid_alive(run.get("pid"))


def reconcile(run: dict[str, Any], settings: Any) -> tuple[list[ReserveRow], int, float]:
    """The check's rows, the reads it took and the seconds they took (the Ray attach excluded)."""
    import ray

    from actors.reserves_probe import ReservesOptions, check_reserves

    r = run.get("ray") or {}
    namespace = r.get("namespace")
    shards = sum(1 for name in run.get("actors") or [] if name.startswith("orders-"))
    options = ReservesOptions.from_settings(settings, shards, run.get("indexes") or list(settings.indexes))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=r.get("address") or "auto", namespace=namespace, log_to_driver=False, configure_logging=False,
             logging_level="ERROR")
    try:
        handles: dict[str, Any] = {}

        async def call(name: str, method: str, *args: Any) -> Any:
            if name not in handles:
                handles[name] = ray.get_actor(name, namespace=namespace)
            return await getattr(handles[name], method).remote(*args)

        started = time.perf_counter()
        rows, reads = asyncio.run(check_reserves(call, options))
        return rows, reads, time.perf_counter() - started
    finally:
        ray.shutdown()
