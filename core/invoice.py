"""The Mint Invoice: what a user's collateral bought, at which prices, what it cost, and what was minted.

Each cost is named for what it is (routing fee, exchange fee), only what was spent is charged, and what went back
is shown (spec/domain.md §12.5). The charge is the exact cost rounded UP to the collateral unit (the ledger counts
whole units); the minted amount is rounded DOWN to the token's decimals, the dust reported. It also says how well the
order was served: its arrival value (core.arrival) and the shortfall against it, split into its causes
(core.shortfall); an order accepted before any value was known has none of these (None)."""
from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, model_validator

from core.arrival import ArrivalValue
from core.money import ZERO, quantize_down
from core.shortfall import decompose, total_bps


class InvoiceLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal
    average_price: Decimal | None
    value: Decimal
    fee: Decimal
    lot_ids: tuple[str, ...] = ()
    #: The asset's mid and best ask when the order arrived, and its average price against that mid in bps (rounded
    #: UP to 0.01); None without an arrival value.
    arrival_mid: Decimal | None = None
    arrival_ask: Decimal | None = None
    shortfall_bps: Decimal | None = None


class MintInvoice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: str
    order_id: str
    user: str
    cl_ord_id: str
    index: str
    collateral: Decimal  # what the order asked for
    cancelled: Decimal  # cancelled by the user
    returned: Decimal  # unspent rest given back to the user's collateral
    spent: Decimal  # charged: assets + exchange fees, rounded up to the collateral unit
    assets_value: Decimal  # exact
    exchange_fee: Decimal  # exact
    routing_fee: Decimal  # this order's share of the routing cost of the user's deposits
    filled_units: Decimal  # index units the fills completed
    minted_units: Decimal  # index units minted: filled_units rounded down to the token's decimals
    token_decimals: int
    lines: tuple[InvoiceLine, ...]
    mint_tx: str | None = None
    minted_ms: int | None = None
    #: Per index unit: the basket at mid and at the best asks when the order arrived (and when that was computed),
    #: the touch at the batches that bought it, and the assets paid (fees apart). None: not known (core.shortfall).
    arrival_value: Decimal | None = None
    arrival_touch: Decimal | None = None
    arrival_ms: int | None = None
    batch_touch: Decimal | None = None
    paid_per_unit: Decimal | None = None
    #: The shortfall against arrival_value in bps and its parts, which add up to it exactly (core.shortfall).
    shortfall_bps: Decimal | None = None
    spread_bps: Decimal | None = None
    delay_bps: Decimal | None = None
    impact_bps: Decimal | None = None
    fee_bps: Decimal | None = None

    @model_validator(mode="after")
    def _adds_up(self) -> "MintInvoice":
        if self.cancelled + self.returned + self.spent != self.collateral:
            raise ValueError(
                f"invoice {self.invoice_id}: cancelled {self.cancelled} + returned {self.returned} + spent "
                f"{self.spent} != collateral {self.collateral}"
            )
        if self.spent < self.assets_value + self.exchange_fee:
            raise ValueError(f"invoice {self.invoice_id}: charged less than the cost")
        if self.minted_units > self.filled_units:
            raise ValueError(f"invoice {self.invoice_id}: minted more than filled")
        if self.shortfall_bps is not None:
            parts = [self.spread_bps, self.delay_bps or ZERO, self.impact_bps, self.fee_bps]
            if any(p is None for p in parts) or sum(parts, ZERO) != self.shortfall_bps:  # type: ignore[arg-type]
                raise ValueError(f"invoice {self.invoice_id}: shortfall parts {parts} do not add up to "
                                 f"{self.shortfall_bps}")
        return self

    @property
    def mint_amount_base_units(self) -> int:
        """The minted amount in the token's integer base units (what the mint transaction carries)."""
        return int(self.minted_units.scaleb(self.token_decimals))


def minted_units_for(filled_units: Decimal, token_decimals: int) -> Decimal:
    """Round DOWN to whole token base units: a mint can never exceed what the fills back."""
    return quantize_down(filled_units, Decimal(1).scaleb(-token_decimals))


def build_invoice(
    *,
    order_id: str,
    user: str,
    cl_ord_id: str,
    index: str,
    collateral: Decimal,
    cancelled: Decimal,
    returned: Decimal,
    spent: Decimal,
    filled_units: Decimal,
    lines: list[InvoiceLine],
    token_decimals: int = 18,
    routing_fee: Decimal = ZERO,
    mint_tx: str | None = None,
    minted_ms: int | None = None,
    arrival: ArrivalValue | None = None,
    batch_touch: Decimal | None = None,
) -> MintInvoice:
    assets_value = sum((l.value for l in lines), ZERO)
    exchange_fee = sum((l.fee for l in lines), ZERO)
    quality = execution_quality(arrival, batch_touch, assets_value, exchange_fee, filled_units)
    if arrival is not None:
        lines = [_line_against(line, arrival) for line in lines]
    return MintInvoice(
        invoice_id=f"inv:{order_id}", order_id=order_id, user=user, cl_ord_id=cl_ord_id, index=index,
        collateral=collateral, cancelled=cancelled, returned=returned, spent=spent,
        assets_value=assets_value, exchange_fee=exchange_fee,
        routing_fee=routing_fee, filled_units=filled_units,
        minted_units=minted_units_for(filled_units, token_decimals), token_decimals=token_decimals,
        lines=tuple(lines), mint_tx=mint_tx, minted_ms=minted_ms, **quality,
    )


def execution_quality(arrival: ArrivalValue | None, batch_touch: Decimal | None, assets_value: Decimal,
                      exchange_fee: Decimal, filled_units: Decimal) -> dict[str, object]:
    """The invoice's arrival fields and shortfall (core.shortfall): the prices per unit are exact quotients (the
    wire rounds them for display); nothing without an arrival value or without units filled."""
    if arrival is None or filled_units <= 0:
        return {}
    paid = assets_value / filled_units
    s = decompose(arrival.mid, arrival.touch, batch_touch, paid, exchange_fee / filled_units)
    return {"arrival_value": arrival.mid, "arrival_touch": arrival.touch, "arrival_ms": arrival.at_ms,
            "batch_touch": batch_touch, "paid_per_unit": paid, "shortfall_bps": s.total_bps,
            "spread_bps": s.spread_bps, "delay_bps": s.delay_bps, "impact_bps": s.impact_bps, "fee_bps": s.fee_bps}


def _line_against(line: InvoiceLine, arrival: ArrivalValue) -> InvoiceLine:
    prices = arrival.assets.get(line.symbol)
    if prices is None:
        return line
    mid, ask = prices
    bps = None if line.average_price is None else total_bps(mid, line.average_price)
    return line.model_copy(update={"arrival_mid": mid, "arrival_ask": ask, "shortfall_bps": bps})
