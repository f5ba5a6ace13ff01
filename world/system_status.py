"""`indexmaker status`: is every part of a running system there, and what is it doing.

From the run file it asks each world process one question (redis PING, anvil block number, the exchange's ping)
and each actor for its Ray record and `inspect()`. Something not answering is DOWN and the command exits 1;
warnings (a stale market, recorded errors) are shown but are not down. Read-only: one `inspect()` per actor."""
from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any

INSPECT_TIMEOUT_S = 10.0


@dataclass
class PartStatus:
    name: str
    kind: str  # "service" | "process" | "actor"
    up: bool
    detail: str = ""
    warnings: list[str] = field(default_factory=list)
    ray: dict[str, Any] = field(default_factory=dict)  # actors: state, restarts, node_id, pid
    inspect: dict[str, Any] | None = None


@dataclass
class SystemStatus:
    phase: str
    parts: list[PartStatus]

    @property
    def healthy(self) -> bool:
        return self.phase == "up" and all(p.up for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "healthy": self.healthy,
                "parts": [p.__dict__ for p in self.parts]}


def _http_json(url: str, body: dict | None = None, timeout_s: float = 3.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"null")


def _process_checks(run: dict[str, Any]) -> list[PartStatus]:
    from world.run_file import pid_alive

    parts = []
    world = {}
    try:
        world = json.loads(open(run["world_file"]).read()) if run.get("world_file") else {}
    except OSError:
        pass
    for role, pid in sorted((run.get("processes") or {}).items()):
        alive = pid_alive(pid)
        detail = f"pid {pid}"
        up = alive
        if alive:
            try:
                if role == "redis":
                    import redis

                    from world.secrets import store_url

                    redis.Redis.from_url(store_url(run["redis_url"]), socket_timeout=3).ping()
                    detail += f", {run['redis_url']}"
                elif role.startswith("anvil-"):
                    chain = world.get("chains", {}).get(role.removeprefix("anvil-"), {})
                    block = _http_json(chain["rpc_url"], {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber",
                                                          "params": []})["result"]
                    detail += f", chain {chain.get('chain_id')} at block {int(block, 16)}"
                elif role in ("exchange", "paper-exchange"):
                    # In paper mode "exchange" is the upstream whose market data the paper exchange mirrors.
                    url = run.get("upstream_url") if role == "exchange" and run.get("upstream_url") else \
                        run["exchange_url"]
                    _http_json(url + "/api/v3/ping")
                    detail += f", {url}"
            except Exception as exc:  # noqa: BLE001  (not answering is what we report)
                up = False
                detail += f", not answering: {type(exc).__name__}: {exc}"
        else:
            detail += " gone"
        parts.append(PartStatus(role, "process", up, detail))
    return parts


def key_figures(name: str, info: dict[str, Any]) -> tuple[str, list[str]]:
    """A one-line summary of an actor's inspect() and its warnings (known actors; others: their counts)."""
    warnings: list[str] = []
    errors = info.get("errors")
    if errors:
        warnings.append(f"{len(errors)} recorded error(s), last: {str(list(errors)[-1])[:160]}")
    if name.startswith("market-"):
        if info.get("stale"):
            warnings.append(f"stale: {info['stale']}")
        if info.get("last_error"):
            warnings.append(f"last error: {str(info['last_error'])[:160]}")
        return f"{info.get('ready')}/{info.get('symbols')} symbols ready, running {info.get('running')}", warnings
    if name == "sender":
        from core.circuit_breaker import describe, stopped

        for trip in info.get("breakers") or []:
            warnings.append(f"circuit breaker open for {describe(trip)}: sending stopped there until `indexmaker "
                            f"resume` or the cool-off")
        degraded = ""
        if info.get("breakers"):
            warnings.append(f"orders held by the breakers: {info.get('held')}")
            what = ", ".join(stopped(t["key"]) for t in info["breakers"])
            degraded = f"DEGRADED (sending stopped for {what}), "
        return (f"{degraded}{info.get('orders')} exchange orders {info.get('by_status')}, in flight "
                f"{info.get('in_flight')}, queued {info.get('queued')}, fill log {info.get('log_seq')}"), warnings
    if name.startswith("orders-"):
        for user, debt in sorted((info.get("debts") or {}).items()):
            warnings.append(f"user {user} owes {debt} USDC")
        for r in info.get("reversed_deposits") or ():
            warnings.append(f"deposit {r.get('deposit')} of {r.get('user')} ({r.get('amount')} USDC) reversed by a "
                            f"reorg, {r.get('debt_added')} left as debt")
        return (f"{info.get('users')} users, {len(info.get('open_orders') or [])} open orders, "
                f"{info.get('invoices')} invoices, {info.get('undelivered')} reports undelivered"), warnings
    if name == "gateway":
        server = info.get("server") or {}
        sessions = server.get("sessions", server.get("connections"))
        return f"{info.get('url')}, sessions {sessions}, reports {(info.get('counts') or {}).get('reports')}", warnings
    if name == "chain":
        if info.get("last_error"):
            warnings.append(f"last error: {str(info['last_error'])[:160]}")
        return (f"deposit cursor {info.get('deposit_cursor')}, deposits forwarded {info.get('deposits_forwarded')}, "
                f"listening {info.get('listening')}, base deposit cursor {info.get('base_deposit_cursor')}, "
                f"reversed {info.get('deposits_reversed')}"), warnings
    if name == "router":
        for key, r in sorted((info.get("reversed_after_routing") or {}).items()):
            warnings.append(f"deposit {key} ({r.get('amount')} USDC) reversed by a reorg after {r.get('route')} "
                            f"moved it out of custody")
        stages = {k: v for k, v in (info.get("by_stage") or {}).items() if v}
        return f"routes {stages or '{}'}, pending {len(info.get('pending') or [])}", warnings
    if name == "solver":
        c = info.get("counts") or {}
        waiting = info.get("waiting_on_stale_books") or {}
        if waiting:
            warnings.append("orders waiting on stale books: " + ", ".join(f"{s} ({n})" for s, n in sorted(
                waiting.items())))
        return (f"{c.get('batches')} batches, {c.get('asset_orders')} asset orders, "
                f"{len(info.get('batches_in_flight') or {})} in flight, "
                f"outbox {len(info.get('outbox') or [])}"), warnings
    if name == "minter":
        c = info.get("counts") or {}
        return f"minted {c.get('minted')}, failed {c.get('failed')}, {info.get('owed', 0)} owed", warnings
    if name == "withdrawals":
        unsettled = info.get("unsettled") or []
        if unsettled:
            warnings.append(f"{len(unsettled)} ended withdrawal(s) not settled in their shard yet: "
                            f"{', '.join(unsettled[:5])}")
        return (f"withdrawals by stage {info.get('stages') or {}}, exchange errors {info.get('exchange_errors')}, "
                f"chain errors {info.get('chain_errors')}"), warnings
    if name == "monitor":
        if info.get("healthy") is False:
            warnings.append("the monitor's last health verdict: NOT healthy")
        warnings += (info.get("reserves") or {}).get("problems") or []  # the last reserves check's differences
        return f"{info.get('polls')} polls, healthy {info.get('healthy')}", warnings
    if name == "http":
        return f"{info.get('url')}", warnings
    counts = info.get("counts")
    return (json.dumps(counts, default=str)[:200] if counts else f"{len(info)} fields"), warnings


def _actor_checks(run: dict[str, Any], with_inspect: bool) -> list[PartStatus]:
    import ray
    from ray._private import state as ray_state

    r = run.get("ray") or {}
    names = run.get("actors") or []
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=r.get("address") or "auto", namespace=r.get("namespace"), log_to_driver=False,
                 configure_logging=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001
        return [PartStatus("ray", "service", False, f"cannot attach to {r.get('address')}: {exc}")]
    try:
        parts = []
        handles: dict[str, Any] = {}
        for name in names:
            try:
                handles[name] = ray.get_actor(name, namespace=r.get("namespace"))
            except ValueError:
                parts.append(PartStatus(name, "actor", False, "not registered (gone)"))
        refs = {n: h.inspect.remote() for n, h in handles.items()} if with_inspect else {}
        for name, handle in handles.items():
            record = ray_state.actors(actor_id=handle._actor_id.hex()) or {}  # noqa: SLF001
            info = {"state": record.get("State"), "restarts": record.get("NumRestarts"),
                    "node_id": (record.get("Address") or {}).get("NodeID"), "pid": record.get("Pid")}
            part = PartStatus(name, "actor", info["state"] == "ALIVE", "", ray=info)
            if not part.up:
                part.detail = f"state {info['state']}"
            if name in refs:
                try:
                    part.inspect = ray.get(refs[name], timeout=INSPECT_TIMEOUT_S)
                    figures, part.warnings = key_figures(name, part.inspect)
                    part.detail = figures if part.up else f"{part.detail}; {figures}"
                except Exception as exc:  # noqa: BLE001
                    part.up = False
                    part.detail = f"inspect() failed: {type(exc).__name__}: {str(exc)[:200]}"
            parts.append(part)
        return parts
    finally:
        ray.shutdown()


def collect(run: dict[str, Any] | None, *, with_inspect: bool = True) -> SystemStatus:
    """The status of the system a run file describes (None: nothing was ever started there)."""
    from world.run_file import pid_alive

    if run is None:
        return SystemStatus("never started", [])
    phase = run.get("phase", "?")
    service_up = pid_alive(run.get("pid"))
    if phase in ("up", "starting", "stopping") and not service_up:
        phase = f"{phase}, but its service (pid {run.get('pid')}) is gone"
    parts = [PartStatus("service", "service", service_up, f"pid {run.get('pid')}" if service_up else "not running")]
    if run.get("phase") != "up" or not service_up:
        parts += _process_checks(run)  # leftovers of a crash show here
        return SystemStatus(phase, parts)
    parts += _process_checks(run)
    parts += _actor_checks(run, with_inspect)
    return SystemStatus(phase, parts)


def render(status: SystemStatus, run: dict[str, Any] | None) -> list[str]:
    lines = []
    if run is not None:
        r = run.get("ray") or {}
        lines.append(f"system: {status.phase}  (environment {run.get('environment')}, gateway "
                     f"{run.get('gateway_url')}, Ray {r.get('address')} namespace {r.get('namespace')})")
        if run.get("exchange_mode") == "paper":
            lines.append(f"  PAPER trading: orders are matched by the paper exchange {run.get('exchange_url')} on the "
                         f"market data of {run.get('upstream_url')}; nothing is sent to that exchange")
        if run.get("error"):
            lines.append(f"  last start failed: {run['error'].strip().splitlines()[-1]}")
    else:
        lines.append(f"system: {status.phase}")
    nodes = sorted({p.ray.get("node_id") for p in status.parts if p.ray.get("node_id")})
    for p in status.parts:
        mark = "up  " if p.up else "DOWN"
        extra = ""
        if p.kind == "actor" and p.ray:
            node = nodes.index(p.ray["node_id"]) if p.ray.get("node_id") in nodes else "?"
            extra = f" [{p.ray.get('state')}, restarts {p.ray.get('restarts')}, node {node}, pid {p.ray.get('pid')}]"
        lines.append(f"  {mark} {p.name:14} {p.detail}{extra}")
        for w in p.warnings:
            lines.append(f"       ! {w}")
    if len(nodes) > 1:
        lines.append("  nodes: " + ", ".join(f"{i} = {n[:12]}…" for i, n in enumerate(nodes)))
    warned = sum(len(p.warnings) for p in status.parts)
    if not status.healthy:
        lines.append("NOT healthy: see the DOWN lines")
    elif warned:  # every part answers, but something needs the operator (stale books, a breaker, money)
        lines.append(f"every part up; {warned} warning(s) above, marked !")
    else:
        lines.append("healthy")
    return lines
