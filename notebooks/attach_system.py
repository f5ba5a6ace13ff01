"""Attach to a RUNNING IndexMaker system from a notebook, read-only: find its Ray cluster and namespace, connect as
one more driver, and take one `inspect()` of each named actor. `ray.init` is only called with an address, so a
missing cluster is an error, never a new one.

Where the system is, first match wins: `INDEXMAKER_RAY_ADDRESS` and `INDEXMAKER_NAMESPACE`; the run file
`indexmaker up` writes (its Ray is not findable by `auto`); `auto` with namespace `indexmaker`."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

ADDRESS_ENV = "INDEXMAKER_RAY_ADDRESS"
NAMESPACE_ENV = "INDEXMAKER_NAMESPACE"
STATE_DIR_ENV = "INDEXMAKER_STATE_DIR"
DEFAULT_NAMESPACE = "indexmaker"
#: The checkout's default state dir (`indexmaker up` without --state-dir, run from the checkout).
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / "state"
# Ray logs, at import inside a kernel, that ipywidgets is missing (for its own rich reprs, which this notebook does
# not use): quieted here, before the notebook imports ray, so the first output is not a red herring.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)

#: An actor that does not answer inspect() in this time is shown as not answering (it may be busy or gone).
INSPECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    """Where the system is, and where that was learnt (shown to the researcher)."""

    address: str
    namespace: str
    source: str


def find_target(environ: Mapping[str, str] | None = None, state_dir: Path | None = None) -> Target:
    """Resolve the cluster address and namespace (module docstring: env, then the run file, then `auto`)."""
    env = os.environ if environ is None else environ
    run: dict[str, Any] = {}
    sd = Path(env[STATE_DIR_ENV]) if env.get(STATE_DIR_ENV) else (state_dir or DEFAULT_STATE_DIR)
    try:
        record = json.loads((sd.expanduser() / "run.json").read_text())
        if record.get("phase") == "up":  # a run file of a stopped system names a cluster that is gone
            run = record.get("ray") or {}
    except (OSError, ValueError):
        pass
    if env.get(ADDRESS_ENV):
        address, source = env[ADDRESS_ENV], f"${ADDRESS_ENV}"
    elif run.get("address"):
        address, source = run["address"], f"{sd / 'run.json'}"
    else:
        address, source = "auto", "default (a `ray start` cluster on this node)"
    namespace = env.get(NAMESPACE_ENV) or run.get("namespace") or DEFAULT_NAMESPACE
    return Target(address, namespace, source)


def connect(target: Target) -> None:
    """Join the cluster as a driver (idempotent). Never starts one: an unreachable address raises."""
    import ray

    if not ray.is_initialized():
        ray.init(address=target.address, namespace=target.namespace, log_to_driver=False, logging_level="ERROR")


def named_actors(namespace: str) -> dict[str, Any]:
    """Every named actor of the namespace: name -> handle, market and orders shards in shard order."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a.get("namespace") == namespace]
    return {n: ray.get_actor(n, namespace=namespace) for n in sorted(names, key=_order)}


def _order(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("-")
    return (head, int(tail)) if head and tail.isdigit() else (name, -1)


def shards(actors: Mapping[str, Any], kind: str) -> list[str]:
    """`market` -> ["market-0", "market-1", ...] (the names present, in shard order)."""
    return [n for n in actors if n.rpartition("-")[0] == kind and n.rpartition("-")[2].isdigit()]


def inspect_all(actors: Mapping[str, Any], timeout_s: float = INSPECT_TIMEOUT_S) -> dict[str, Any]:
    """One `inspect()` per actor, all in flight at once; an actor that fails or times out maps to its error text
    (a string) instead of a dict, so one sick actor does not hide the others."""
    import ray

    refs = {n: h.inspect.remote() for n, h in actors.items()}
    out: dict[str, Any] = {}
    for name, ref in refs.items():
        try:
            out[name] = ray.get(ref, timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001  (shown, not raised: the notebook reads the others)
            out[name] = f"{type(exc).__name__}: {exc}"[:300]
    return out
