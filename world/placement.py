"""Where each actor runs: Ray custom resources per actor name, from the config (`[ray.placement]`).

    [ray.placement]
    "market-*" = { exchange = 1 }
    solver = { core = 0.01 }

Resources, not node ids: an id is new at each start, a resource is what the operator gives a node (`ray start
--resources`), so one config places the same way every time. `placed()` merges `resources` into the start helpers'
options: the launcher decides where, the helpers how."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping


def resources_for(name: str, placement: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The resources for actor `name`: its exact entry, else the longest matching "prefix*" entry, else "*"."""
    if name in placement:
        return dict(placement[name])
    best: tuple[int, Mapping[str, float]] | None = None
    for pattern, res in placement.items():
        if pattern.endswith("*") and name.startswith(pattern[:-1]) and (best is None or len(pattern) > best[0]):
            best = (len(pattern), res)
    return dict(best[1]) if best is not None else {}


def check_placement(placement: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Problems with a placement table, one sentence each (empty: fine)."""
    problems = []
    for pattern, res in placement.items():
        if "*" in pattern[:-1]:
            problems.append(f"ray.placement.{pattern}: only a trailing '*' is supported")
        for resource, amount in res.items():
            if resource in ("CPU", "GPU", "memory", "object_store_memory"):
                problems.append(f"ray.placement.{pattern}.{resource}: not a custom resource (every actor has "
                                f"num_cpus=0 by design; place with resources the nodes are started with)")
            elif not amount > 0:
                problems.append(f"ray.placement.{pattern}.{resource}: must be > 0, got {amount}")
    return problems


@contextmanager
def placed(actor_class: Any, placement: Mapping[str, Mapping[str, float]]) -> Iterator[None]:
    """Within the block, every `actor_class.options(name=..., ...)` also asks for the resources `placement` gives
    that name (nothing changes for a name it does not place, or when it is empty)."""
    if not placement:
        yield
        return
    original = actor_class.options
    own = vars(actor_class).get("options")  # set on this very object (a class's own method), or inherited

    def options(**kwargs: Any) -> Any:
        resources = resources_for(str(kwargs.get("name", "")), placement)
        if resources:
            kwargs["resources"] = {**dict(kwargs.get("resources") or {}), **resources}
        return original(**kwargs)

    actor_class.options = options
    try:
        yield
    finally:
        if own is not None:
            setattr(actor_class, "options", own)
        else:
            del actor_class.options  # the method of its class (Ray's ActorClass) shows through again
