"""Was this actor re-created by Ray after a crash? Asked by every stateful actor's __init__ (a restart reloads
and resumes by itself; nobody calls start() on it)."""
from __future__ import annotations

from typing import Any

import ray


def restarted_by_ray() -> bool:
    """True in an actor Ray restarted; False in a first start, and outside Ray (an actor class constructed as a
    plain object in a test): there Ray is not initialised, and asking its runtime context would start a local
    instance in that process as a side effect."""
    if not ray.is_initialized():
        return False
    try:
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except Exception:  # noqa: BLE001  (a driver, not an actor)
        return False


def start_named(actor_class: Any, name: str, namespace: str | None, detached: bool, *args: Any) -> Any:
    """Create (or get) the named actor, detached if asked, and call its `start()` (fire and forget)."""
    opts: dict[str, Any] = {"name": name, "get_if_exists": True}
    if namespace is not None:
        opts["namespace"] = namespace
    if detached:
        opts["lifetime"] = "detached"
    handle = actor_class.options(**opts).remote(*args)
    handle.start.remote()
    return handle
