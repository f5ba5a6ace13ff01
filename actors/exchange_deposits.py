"""The exchange side of the route's last hop, from exchange/gateway.py: the deposit address the exchange API gives
for (coin, network), and whether a deposit with our transaction id is credited. Binance deposit statuses: 0
pending, 6 credited but not withdrawable, 1 success (spec/binance.md); 6 and 1 count as credited."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Awaitable, Callable

CREDITED_STATUSES = (1, 6)


def gateway_deposit_callables(gateway: Any) -> tuple[Callable[[str, str], Awaitable[str]],
                                                      Callable[[str, str, str, Decimal], Awaitable[Decimal | None]]]:
    """(deposit_address, exchange_credited) over a BinanceGateway, as the router's RouteEffects want them."""

    async def deposit_address(coin: str, network: str) -> str:
        return (await gateway.fetch_deposit_address(coin, network)).address

    async def exchange_credited(coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None:
        for d in await gateway.fetch_deposits(coin):
            if (d.tx_id or "").lower() == tx_hash.lower() and d.status in CREDITED_STATUSES:
                return d.amount
        return None

    return deposit_address, exchange_credited
