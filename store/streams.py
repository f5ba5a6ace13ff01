"""Every durable hand-off of the house, by name: the one place that says which stream joins which pair."""
from __future__ import annotations

from store.handoff import Handoff


def sender_executions(account: str) -> Handoff:
    """The sender of `account` -> the solver: fills and order completions (core/fill_log.py numbers them)."""
    return Handoff(f"sender:{account}:executions")
