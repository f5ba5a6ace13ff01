"""The chain side's stored kinds: the router's routes, queue, reversals and ledgers, transaction intents, block
cursors. Version 0 is what the code wrote before records.

Index entries stay plain Redis values: a deposit's status word, the `active` set, the route counter, the cursor's
block hashes and seen keys, the nonce indexes. Each is one scalar under its key: no layout to drift.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Literal, Mapping

from core.collateral_ledger import CollateralLedger
from core.collateral_route import CollateralRoute, RouteStage
from core.route_batch import RouteMember
from store.ledger_records import LedgerPart, ledger_v0, ledger_v1_to_v2
from store.records import Record, held_in, record_kind, same_data


# ---------------------------------------------------------------------------------------------------- ledgers

@record_kind
class RouterLedgerRecord(Record):
    """One user's collateral ledger as the router keeps it without the order-book shards (`ledgers:users`)."""

    KIND: ClassVar[str] = "router.ledger"
    VERSION: ClassVar[int] = 2
    MIGRATIONS = {0: lambda data: {"ledger": ledger_v0(data)},  # version 0 stored the ledger's plain data bare
                  1: lambda data: data | {"ledger": ledger_v1_to_v2(data["ledger"])}}

    ledger: LedgerPart

    @classmethod
    def of(cls, ledger: CollateralLedger) -> "RouterLedgerRecord":
        return cls.model_validate({"ledger": ledger.to_dict()})

    def collateral_ledger(self) -> CollateralLedger:
        return CollateralLedger.from_dict(self.ledger.model_dump(mode="json"))


@record_kind
class RoutedNetRecord(Record):
    """What each deposit of a finished route brought to the exchange, net of its fees (`ledgers:routed`)."""

    KIND: ClassVar[str] = "router.routed"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("net_by_deposit")}

    net_by_deposit: dict[str, Decimal]


# ---------------------------------------------------------------------------------------------------- routes

@record_kind
class RouteRecord(Record):
    """One collateral route (`<router>:routes`), held as the domain's dataclass: its fields are the stored layout.
    A step's facts (tx hashes, blocks, amounts as strings) stay mappings: what each step records is its business."""

    KIND: ClassVar[str] = "router.route"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("route")}

    route: CollateralRoute


def _pending_v0(data: dict[str, Any]) -> dict[str, Any]:
    return {"member": {k: v for k, v in data.items() if k != "chain_id"}, "chain_id": data["chain_id"]}


@record_kind
class PendingDepositRecord(Record):
    """A credited deposit waiting for its route (`<router>:pending`), with the chain it arrived on."""

    KIND: ClassVar[str] = "router.pending"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _pending_v0}

    member: RouteMember
    chain_id: int


def _reversal_v0(data: dict[str, Any]) -> dict[str, Any]:
    # A deposit reversed while still queued was stored without a stage.
    return {"stage": None, **data}


@record_kind
class ReversalRecord(Record):
    """A deposit a reorg took back (`<router>:reversed`): whose, how much, and whether its money had left custody
    (then the route and its stage at the time)."""

    KIND: ClassVar[str] = "router.reversal"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: _reversal_v0}

    user: str
    amount: Decimal
    routed: bool
    route: str | None
    stage: RouteStage | None


@record_kind
class StrandedReversalRecord(Record):
    """A reversed deposit whose money had already left custody (`<router>:reversed_after_routing`): the
    operator's to recover."""

    KIND: ClassVar[str] = "router.stranded_reversal"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: same_data}

    user: str
    amount: Decimal
    route: str
    stage: RouteStage


# ---------------------------------------------------------------------------------------------------- chain txs

@record_kind
class TxIntentRecord(Record):
    """A transaction recorded before it is broadcast (`tx:<chain>:<account>:intents`): the signed bytes a retry
    sends again, and `meta`, the effect it stands for (recipient, amount), which a replay must match."""

    KIND: ClassVar[str] = "tx.intent"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: same_data}

    key: str
    nonce: int
    tx_hash: str
    raw: str
    state: Literal["signed", "sent", "mined"]
    meta: dict[str, str | int]
    block: int | None = None  # where it was mined, and the receipt's status (1 success, 0 reverted): once mined
    status: int | None = None

    @classmethod
    def of(cls, intent: Mapping[str, Any]) -> "TxIntentRecord":
        """From the sender's working copy (keys starting with "_" are its in-memory flags, never stored)."""
        return cls.model_validate({k: v for k, v in intent.items() if not k.startswith("_")})


@record_kind
class NextNonceRecord(Record):
    """The next nonce of one account on one chain (`tx:<chain>:<account>:next_nonce`)."""

    KIND: ClassVar[str] = "tx.next_nonce"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("next_nonce")}

    next_nonce: int


@record_kind
class BlockCursorRecord(Record):
    """The next block a chain listener reads (`<listener>:next`)."""

    KIND: ClassVar[str] = "chain.block_cursor"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("next_block")}

    next_block: int
