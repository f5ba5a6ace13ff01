"""Which confirmed deposits travel together in one bridge transfer.

Gas is paid per transaction, not per user, so many deposits in one transfer divide it (core.fees.split_cost); but a
batch waits for its members. The policy closes a batch on enough deposits, enough money, or the oldest member's
wait. `max_deposits = 1` routes every deposit alone at once."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Sequence

from core.money import ZERO, D


@dataclass(frozen=True, slots=True)
class RouteMember:
    """One user's deposit inside a route."""

    deposit_key: str  # the deposit's idempotency key (chain:tx:log index)
    user: str
    amount: Decimal
    seen_ms: int  # when the deposit was confirmed: a batch's age is its oldest member's

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "amount": str(self.amount)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RouteMember":
        return cls(data["deposit_key"], data["user"], D(data["amount"]), int(data["seen_ms"]))


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_deposits: int = 1
    #: A batch closes as soon as its total reaches this (None: no amount trigger).
    close_amount: Decimal | None = None
    #: ... or once its oldest member has waited this long.
    max_wait_ms: int = 0

    def __post_init__(self) -> None:
        if self.max_deposits < 1:
            raise ValueError("max_deposits must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if self.close_amount is not None and self.close_amount <= 0:
            raise ValueError("close_amount must be positive")


def take_batch(pending: Sequence[RouteMember], policy: BatchPolicy, now_ms: int) -> list[RouteMember] | None:
    """The members of the next batch to send (oldest first), or None if the policy says wait.

    Members are taken in confirmation order, at most `max_deposits`; a batch closes early when the running total
    reaches `close_amount`."""
    if not pending:
        return None
    ordered = sorted(pending, key=lambda m: (m.seen_ms, m.deposit_key))
    taken: list[RouteMember] = []
    total = ZERO
    for member in ordered:
        taken.append(member)
        total += member.amount
        if len(taken) >= policy.max_deposits:
            return taken
        if policy.close_amount is not None and total >= policy.close_amount:
            return taken
    if now_ms - ordered[0].seen_ms >= policy.max_wait_ms:
        return taken
    return None
