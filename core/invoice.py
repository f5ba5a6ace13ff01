"""The Mint Invoice: what a user's collateral bought, at which prices, what it cost, and what was minted.

Each cost is named for what it is (routing fee, exchange fee), only what was spent is charged, and what went back
is shown (spec/domain.md §12.5). The charge is the exact cost rounded UP to the collateral unit (the ledger counts
whole units); the minted amount is rounded DOWN to the token's decimals, the dust reported."""
from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, model_validator

from core.money import ZERO, quantize_down


class InvoiceLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal
    average_price: Decimal | None
    value: Decimal
    fee: Decimal
    lot_ids: tuple[str, ...] = ()


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
) -> MintInvoice:
    return MintInvoice(
        invoice_id=f"inv:{order_id}", order_id=order_id, user=user, cl_ord_id=cl_ord_id, index=index,
        collateral=collateral, cancelled=cancelled, returned=returned, spent=spent,
        assets_value=sum((l.value for l in lines), ZERO), exchange_fee=sum((l.fee for l in lines), ZERO),
        routing_fee=routing_fee, filled_units=filled_units,
        minted_units=minted_units_for(filled_units, token_decimals), token_decimals=token_decimals,
        lines=tuple(lines), mint_tx=mint_tx, minted_ms=minted_ms,
    )
