"""The record kinds of an order-book shard (actors/order_books.py): user snapshots, the shard's meta, the answers
of completed batches, invoices and the report outbox.

The book, ledger and order schemas pin, field by field, the plain data of core's `to_dict()`: a key renamed there
fails the fixture test instead of a restart. Version 0 is what the code wrote before records (plain JSON, and
pickled reports); the fields it could lack get the defaults the old loaders applied.
"""
from __future__ import annotations

import dataclasses
import pickle
import typing
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Mapping, Union

from pydantic import BaseModel, Field, create_model

from core.index_order import IndexOrderStatus
from core.index_order_book import UserOrderBook
from core.invoice import MintInvoice
from core.mint_request import MintRequest
from core.side import Side
from core.token_ledger import TokenLedger
from protocol import indexmaker_app
from protocol.envelope import UserRef
from store.ledger_records import LedgerPart, ledger_v0, ledger_v1_to_v2
from store.records import Part, Record, held_in, record_kind, same_data


# ------------------------------------------------------------------------------------------ a user's book
class ArrivalPart(Part):
    """core.arrival.ArrivalValue: per index unit at mid and at the best asks, when, and per symbol (mid, ask)."""

    mid: Decimal
    touch: Decimal
    at_ms: int
    assets: dict[str, tuple[Decimal, Decimal]]


class OrderPart(Part):
    order_id: str
    user: str
    cl_ord_id: str
    index: str
    side: Side
    status: IndexOrderStatus
    created_ms: int
    updated_ms: int
    reject_reason: str | None
    cancel_pending: bool
    minted_tx: str | None
    collateral: Decimal
    remaining: Decimal
    engaged: Decimal
    spent: Decimal
    cost_exact: Decimal
    filled_units: Decimal
    cancelled: Decimal
    returned: Decimal
    unit: Decimal
    arrival: ArrivalPart | None
    touch_value: Decimal
    touch_units: Decimal
    min_proceeds: Decimal | None  # a sell's minimum USDC
    proceeds: Decimal  # a sell's payouts credited so far


class BookPart(Part):
    user: str
    unit: Decimal
    max_open_orders: int
    known_indexes: list[str]
    ledger: LedgerPart
    orders: list[OrderPart]  # creation order: keeps FIFO across restarts


#: An order's accumulated invoice line for one asset: [base units, quantity, value, fee, lot ids].
LinePart = tuple[int, Decimal, Decimal, Decimal, list[str]]


class IndexTokensPart(Part):
    """core.token_ledger.IndexTokens: one index's tokens of one user."""

    credited: Decimal
    available: Decimal
    reserved: Decimal
    redeemed: Decimal
    reversed: Decimal
    debt: Decimal


class TokenLedgerPart(Part):
    """core.token_ledger.TokenLedger's to_dict(): the user's index tokens deposited for redemption."""

    unit: Decimal
    indexes: dict[str, IndexTokensPart]
    deposits: dict[str, tuple[str, Decimal]]  # deposit key -> (index, units)
    reversals: dict[str, Decimal]  # deposit key -> units taken back


def _user_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"book": data["book"] | {"ledger": ledger_v0(data["book"]["ledger"])}}


def _user_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 2: orders carry their arrival value and their batches' touch; older orders have neither.
    orders = [{"arrival": None, "touch_value": "0", "touch_units": "0"} | o for o in data["book"]["orders"]]
    return data | {"book": data["book"] | {"orders": orders}}


def _user_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": None} | data  # written before index tokens could be deposited: none


def _user_v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"book": data["book"] | {"ledger": ledger_v1_to_v2(data["book"]["ledger"])}}


def _user_v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    # Version 5: orders carry a sell's minimum USDC; older orders are all buys, which have none.
    orders = [{"min_proceeds": None} | o for o in data["book"]["orders"]]
    return data | {"book": data["book"] | {"orders": orders}}


def _user_v5_to_v6(data: dict[str, Any]) -> dict[str, Any]:
    # Version 6: orders carry a sell's proceeds; no sell was sold before.
    orders = [{"proceeds": "0"} | o for o in data["book"]["orders"]]
    return data | {"book": data["book"] | {"orders": orders}}


@record_kind
class ShardUser(Record):
    """One user's snapshot (a field of the shard's users hash), rewritten whenever the user is touched."""

    KIND: ClassVar[str] = "shard.user"
    VERSION: ClassVar[int] = 6
    MIGRATIONS = {0: _user_v0_to_v1, 1: _user_v1_to_v2, 2: _user_v2_to_v3, 3: _user_v3_to_v4, 4: _user_v4_to_v5,
                  5: _user_v5_to_v6}

    ref: tuple[int, str]  # (chain_id, address)
    book: BookPart
    lines: dict[str, dict[str, LinePart]]  # order id -> symbol -> line
    tokens: TokenLedgerPart | None  # index tokens deposited for redemption (None: never any)
    #: Invoices inside a snapshot written before invoices had a hash of their own; the load moves them there and
    #: the current code writes none.
    invoices: dict[str, MintInvoice] = {}

    @classmethod
    def of(cls, ref: UserRef, book: UserOrderBook, lines: Mapping[str, Mapping[str, list[Any]]],
           tokens: TokenLedger | None = None) -> "ShardUser":
        return cls.model_validate({"ref": (ref.chain_id, ref.address), "book": book.to_dict(), "lines": lines,
                                   "tokens": None if tokens is None else tokens.to_dict()})

    def user_ref(self) -> UserRef:
        return UserRef(self.ref[0], self.ref[1])

    def user_book(self, *, max_open_orders: int, known_indexes: tuple[str, ...]) -> UserOrderBook:
        return UserOrderBook.from_dict(self.book.model_dump(mode="json"), max_open_orders=max_open_orders,
                                       known_indexes=known_indexes)

    def token_ledger(self) -> TokenLedger | None:
        return None if self.tokens is None else TokenLedger.from_dict(self.tokens.model_dump(mode="json"))


# ------------------------------------------------------------------------------------------ the shard's meta
class MintPart(Part):
    """core.mint_request.MintRequest."""

    order_id: str
    user: str
    index: str
    filled_units: Decimal
    token_decimals: int

    @classmethod
    def of(cls, m: MintRequest) -> "MintPart":
        return cls(order_id=m.order_id, user=m.user, index=m.index, filled_units=m.filled_units,
                   token_decimals=m.token_decimals)

    def mint(self) -> MintRequest:
        return MintRequest(self.order_id, self.user, self.index, self.filled_units, self.token_decimals)


class ReversalPart(Part):
    """A deposit taken back after a reorg, kept for the operator's view."""

    deposit: str
    user: str
    amount: Decimal
    debt_added: Decimal
    routed: bool
    at_ms: int


def _meta_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {"reversals": []} | data  # a meta written before reversals has none


def _meta_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Reports went to a registered subscriber, which the meta named with the last seq it took; they go through the
    # reports hand-off now, whose consumer keeps its own cursor.
    return {k: v for k, v in data.items() if k not in ("delivered", "subscriber")}


@record_kind
class ShardMeta(Record):
    """The shard's own bookkeeping, rewritten whole by every commit."""

    KIND: ClassVar[str] = "shard.meta"
    VERSION: ClassVar[int] = 3
    MIGRATIONS = {0: _meta_v0_to_v1, 1: _meta_v1_to_v2, 2: lambda data: {"step_cursor": 0} | data}

    fifo: list[str]  # open order ids in acceptance order
    engaged: dict[str, list[tuple[str, Decimal]]]  # batch id -> (order id, collateral engaged)
    routes: dict[str, dict[str, Decimal]]  # route id -> deposit key -> net amount routed
    report_seq: int  # the last report's seq (the reports hand-off's entry ids)
    step_cursor: int  # the last solver step applied (the solver's steps hand-off)
    errors: list[str]
    reversals: list[ReversalPart]
    #: The idempotency records inside a meta written before they had keys of their own (ShardCompleted and the
    #: fill-keys set); the load moves them out and the current code writes them empty.
    fill_keys: list[str] = []
    completed: dict[str, list[MintPart]] = {}


@record_kind
class ShardCompleted(Record):
    """A completed batch's answer (a field of the completed hash, written once): replayed to a repeated call."""

    KIND: ClassVar[str] = "shard.completed"
    VERSION: ClassVar[int] = 1
    MIGRATIONS = {0: held_in("mints")}  # version 0 was the bare list

    mints: list[MintPart]

    @classmethod
    def of(cls, mints: list[MintRequest]) -> "ShardCompleted":
        return cls(mints=[MintPart.of(m) for m in mints])

    def requests(self) -> list[MintRequest]:
        return [m.mint() for m in self.mints]


@record_kind
class ShardInvoice(Record):
    """An order's invoice (a field of the invoices hash, keyed by user key and ClOrdID)."""

    KIND: ClassVar[str] = "shard.invoice"
    #: Version 2: the invoice and its lines carry the arrival value and the shortfall (None in older ones).
    VERSION: ClassVar[int] = 2
    MIGRATIONS = {0: held_in("invoice"), 1: same_data}  # version 0 was the bare MintInvoice

    invoice: MintInvoice


# ------------------------------------------------------------------------------------------ the report outbox
def _response_model(cls: type) -> type[BaseModel]:
    """A pydantic model of one response dataclass of protocol/indexmaker_app.py, tagged by its class name: the
    fields are the dataclass's own, so a renamed field changes what is written (and fails the fixture test)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (hints[f.name], ...) for f in dataclasses.fields(cls)}
    return create_model(f"{cls.__name__}Part", __base__=Part, type=(Literal[cls.__name__], ...), **fields)


RESPONSE_TYPES: dict[str, type] = {c.__name__: c for c in typing.get_args(indexmaker_app.AppResponse)}
_RESPONSE_PARTS: dict[str, type[BaseModel]] = {name: _response_model(c) for name, c in RESPONSE_TYPES.items()}
#: Any response of protocol/indexmaker_app.py, told apart by its "type".
ResponsePart = Annotated[Union[tuple(_RESPONSE_PARTS.values())],  # type: ignore[valid-type]
                         Field(discriminator="type")]


def response_data(response: Any) -> dict[str, Any]:
    """A response as the plain data its part validates."""
    name = type(response).__name__
    return {"type": name} | {f.name: getattr(response, f.name, f.default) for f in dataclasses.fields(response)}


def _report_v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
    # Reads what older code wrote: a pickled actors.order_books.ShardReport (seq, shard, response). Never written.
    old = pickle.loads(data["pickled"])
    return {"seq": old.seq, "shard": old.shard, "response": response_data(old.response)}


def _report_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 2: fill reports and quote results name their index; older ones served one index, not named ("").
    if data["response"]["type"] in ("OrderProgress", "QuoteResult"):
        return data | {"response": {"index": ""} | data["response"]}
    return data


def _report_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3: fill reports carry the running shortfall (None in older ones), invoices their arrival fields.
    if data["response"]["type"] == "OrderProgress":
        return data | {"response": {"shortfall_bps": None} | data["response"]}
    return data


@record_kind
class ShardReportRecord(Record):
    """A report of the shard: an entry of its reports hand-off (store/streams.py), or of the sorted set older code
    kept them in."""

    KIND: ClassVar[str] = "shard.report"
    VERSION: ClassVar[int] = 3
    MIGRATIONS = {0: _report_v0_to_v1, 1: _report_v1_to_v2, 2: _report_v2_to_v3}

    seq: int
    shard: int
    response: ResponsePart

    @classmethod
    def of(cls, seq: int, shard: int, response: Any) -> "ShardReportRecord":
        return cls.model_validate({"seq": seq, "shard": shard, "response": response_data(response)})

    def app_response(self) -> Any:
        part = self.response
        return RESPONSE_TYPES[part.type](**{k: getattr(part, k) for k in type(part).model_fields if k != "type"})

    @classmethod
    def load(cls, raw: bytes | str | Mapping[str, Any]) -> "ShardReportRecord":
        if isinstance(raw, bytes) and raw[:1] == b"\x80":  # a pickle (protocol >= 2): what older code wrote
            raw = {"pickled": raw}
        return super().load(raw)
