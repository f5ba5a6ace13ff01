"""What an order-book shard hands back when an index order is finished with something bought: the mint it is owed.

A plain event between actors (shard -> solver -> chain). Its idempotency key is the index order id: the same order
is minted once whatever the number of times the request is re-driven after a restart. The amount is fixed here,
from the filled units rounded DOWN to the token's decimals (a mint never exceeds what the fills back).
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from core.invoice import minted_units_for
from core.money import D


@dataclass(frozen=True, slots=True)
class MintRequest:
    order_id: str  # user:cl_ord_id, the mint's idempotency key
    user: str  # the address that receives the tokens
    index: str
    filled_units: Decimal
    token_decimals: int

    @property
    def minted_units(self) -> Decimal:
        return minted_units_for(self.filled_units, self.token_decimals)

    @property
    def amount_base_units(self) -> int:
        """The token amount the mint transaction carries (integer base units)."""
        return int(self.minted_units.scaleb(self.token_decimals))

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "user": self.user, "index": self.index,
                "filled_units": str(self.filled_units), "token_decimals": self.token_decimals}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MintRequest":
        return cls(data["order_id"], data["user"], data["index"], D(data["filled_units"]), int(data["token_decimals"]))
