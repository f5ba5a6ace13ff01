"""Every durable hand-off of the house, by name: the one place that says which stream joins which pair."""
from __future__ import annotations

from store.handoff import Handoff


def sender_executions(account: str) -> Handoff:
    """The sender of `account` -> the solver: fills and order completions (core/fill_log.py numbers them)."""
    return Handoff(f"sender:{account}:executions")


def shard_reports(key_prefix: str, shard: int) -> Handoff:
    """The order shard `shard` -> the gateway: its reports (fills, closes, invoices), numbered per shard."""
    return Handoff(f"{key_prefix}:{shard}:reports")


def solver_steps(key_prefix: str, shard: int) -> Handoff:
    """The solver -> the index-order shard `shard` (of that key prefix): fill deltas, completions, give-ups."""
    return Handoff(f"{key_prefix}:{shard}:steps")
