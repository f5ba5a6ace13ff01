"""The stored form of a withdrawal (core/withdrawal.py): written before any effect of its latest transition, so a
restarted owner reads the stage and the facts of every hop and carries on from there."""
from __future__ import annotations

from typing import ClassVar

from core.withdrawal import Withdrawal, WithdrawalRequest
from store.records import Record, record_kind


@record_kind
class WithdrawalRecord(Record):
    """One withdrawal, held as the domain's dataclass: its fields are the stored layout."""

    KIND: ClassVar[str] = "withdrawal"
    VERSION: ClassVar[int] = 1

    withdrawal: Withdrawal


@record_kind
class ShardWithdrawal(Record):
    """A withdrawal request its user's shard accepted (a field of the shard's withdrawals hash, written with the
    hold in one commit): what a restarted shard hands again to the withdrawal actor while its hold is open."""

    KIND: ClassVar[str] = "shard.withdrawal"
    VERSION: ClassVar[int] = 1

    request: WithdrawalRequest
