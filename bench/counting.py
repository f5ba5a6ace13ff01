"""What one index order costs the system: actor calls (per actor method, from Ray's task events) and Redis write
commands (the bench's redis-server INFO commandstats), each read before and after a phase and diffed.

Ray's state API is served by the dashboard head: the bench starts Ray with it. A write command is one Redis flags
as "write" (COMMAND INFO); the commands of a MULTI count one by one, as the server executes them.
"""
from __future__ import annotations

from collections import Counter
from typing import Any


def actor_calls(limit: int = 1_000_000) -> Counter[str]:
    """Actor tasks so far (creations excluded), by "Class.method"."""
    import ray
    from ray.util.state import list_tasks

    # This job's cluster by its address: other Ray instances may run on the machine.
    tasks = list_tasks(address=ray.get_runtime_context().gcs_address, filters=[("type", "=", "ACTOR_TASK")],
                       limit=limit, raise_on_missing_output=False, timeout=120)
    return Counter(t.name for t in tasks)


def _write_commands(client: Any) -> set[str]:
    out = set()
    for name, info in client.command().items():
        flags = {f.decode() if isinstance(f, bytes) else f for f in info.get("flags", ())}
        if "write" in flags:
            out.add(name.decode() if isinstance(name, bytes) else name)
    return out


def redis_writes(client: Any) -> Counter[str]:
    """Write commands executed so far, by command."""
    writes = _write_commands(client)
    stats = client.info("commandstats")
    out: Counter[str] = Counter()
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_").split("|")[0]
        if name in writes:
            out[key.removeprefix("cmdstat_")] += int(value["calls"])
    return out


def per_order(before: Counter[str], after: Counter[str], orders: int) -> dict[str, float]:
    """(after - before) / orders, per key, largest first, with the total under "total"."""
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
    out = {k: round(v / orders, 3) for k, v in sorted(diff.items(), key=lambda kv: (-kv[1], kv[0]))}
    out["total"] = round(sum(diff.values()) / orders, 3)
    return out
