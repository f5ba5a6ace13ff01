"""A user's collateral ledger (core/collateral_ledger.py) as a part of a record: the order-book shard's user
snapshot and the router's chain-only ledgers both store one."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from store.records import Part


class LedgerPart(Part):
    unit: Decimal
    available: Decimal
    held: Decimal
    reserved: Decimal
    spent: Decimal
    fees_charged: Decimal
    credited: Decimal
    debt: Decimal
    withdrawn: Decimal
    reservations: dict[str, Decimal]
    deposits: dict[str, Decimal]
    fees: dict[str, Decimal]
    holds: dict[str, Decimal]
    reversed: dict[str, Decimal]
    withdrawals: dict[str, Decimal]
    payouts: dict[str, Decimal]


def ledger_v0(ledger: dict[str, Any]) -> dict[str, Any]:
    """A ledger (core CollateralLedger.to_dict) written before routing holds and reorgs lacks held, debt, holds and
    reversed: they were zero. Every kind that stores a ledger fills them in its migration from version 0."""
    filled = {k: ledger.get(k, "0") for k in ("held", "debt")} | {k: ledger.get(k, {}) for k in ("holds", "reversed")}
    return ledger | filled


def ledger_v1_to_v2(ledger: dict[str, Any]) -> dict[str, Any]:
    """A ledger written before withdrawals had none: nothing withdrawn, held for or paid to any."""
    return {"withdrawn": "0", "withdrawals": {}, "payouts": {}} | ledger
