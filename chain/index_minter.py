"""Mints the index token to a user, once per index order.

The idempotency key is the index order id (DESIGN.md): the TxSender records the signed mint under
`mint:<order id>` before sending it, so a solver or chain actor restarted at any moment — even right after the
broadcast — gets the first mint's receipt back instead of minting again. A second request for the same order with
another recipient or amount is refused (ConflictingIntent), never sent.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from chain.tx_sender import TxResult, TxSender
from core.money import to_units


class IndexMinter:
    def __init__(self, sender: TxSender, token: Any, *, decimals: int = 18) -> None:
        self.sender = sender
        self.token = token  # the index token contract (AsyncWeb3), whose minter is the sender's account
        self.unit = Decimal(1).scaleb(-decimals)

    @staticmethod
    def key(index_order_id: str) -> str:
        return f"mint:{index_order_id}"

    async def mint(self, index_order_id: str, recipient: str, quantity: Decimal) -> TxResult:
        """Mint `quantity` index units (a whole number of 10^-decimals: the solver rounds down before, domain.md
        §12.7; a fraction is refused here rather than rounded a second time)."""
        units = to_units(quantity, self.unit)
        if units <= 0:
            raise ValueError(f"mint for {index_order_id}: quantity must be positive, got {quantity}")
        result = await self.sender.send(self.key(index_order_id), self.token.functions.mint(recipient, units),
                                        meta={"recipient": recipient.lower(), "units": str(units)})
        if not result.ok:
            raise RuntimeError(f"mint for {index_order_id} reverted on chain in tx {result.tx_hash}")
        return result

    async def minted(self, index_order_id: str) -> str | None:
        """The tx hash of this order's mint if one was recorded (sent or not yet seen mined)."""
        intent = await self.sender.intent(self.key(index_order_id))
        return intent["tx_hash"] if intent else None
