"""Reaching the order shards (actors/order_books.py) from outside: which shard owns a user or an order, and the
clients that split a batch over the shards, one call per shard, for the gateway (`ShardedApp`), the chain's
router (`ShardedCollateralSink`) and the chain listener's index-token deposits (`ShardedTokenSink`).

Users are hashed to shards by address (core.shard_assignment's stable hash of the lower-cased address), so the
gateway, the chain listener, the router and the solver all find a user's shard without asking anyone.
"""
from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from core.chain_events import CollateralDeposit, DepositReversal, TokenDeposit
from core.collateral_route import FeeCharge
from core.index_order import user_key
from core.shard_assignment import shard_of
from protocol.indexmaker_app import AppRequest, AppResponse, NewQuote, QuoteRefused
from protocol.reason_codes import ReasonCode

log = logging.getLogger(__name__)


# ============================================================================================== routing
def orders_shard_name(k: int) -> str:
    return f"orders-{k}"


def shard_of_user(address: str, shards: int) -> int:
    return shard_of(user_key(address), shards)


def user_of_order(order_id: str) -> str:
    """The user key of an index order id (`user:cl_ord_id`; an address holds no colon)."""
    return order_id.split(":", 1)[0]


def shard_of_order(order_id: str, shards: int) -> int:
    return shard_of(user_of_order(order_id), shards)


def split_by_shard(items: Iterable[Any], shards: int, address_of: Any) -> dict[int, list[Any]]:
    """Group items by the shard of `address_of(item)`, keeping their order: one call per shard."""
    out: dict[int, list[Any]] = {}
    for item in items:
        out.setdefault(shard_of_user(address_of(item), shards), []).append(item)
    return out



# ============================================================================================== clients
class ShardedCollateralSink:
    """chain's CollateralSink over the order-book shards: one call per shard per step, each item to its user's
    shard (the router's batches hold many users)."""

    def __init__(self, shards: Sequence[Any]) -> None:
        self.shards = list(shards)

    async def credit(self, deposits: Sequence[CollateralDeposit], holds: Mapping[str, Decimal]) -> None:
        groups = split_by_shard(deposits, len(self.shards), lambda d: d.user)
        await asyncio.gather(*(self.shards[k].credit.remote(items, {d.key: holds[d.key] for d in items
                                                                    if d.key in holds})
                               for k, items in groups.items()))

    async def charge(self, charges: Sequence[FeeCharge]) -> None:
        groups = split_by_shard(charges, len(self.shards), lambda c: c.user)
        await asyncio.gather(*(self.shards[k].charge.remote(items) for k, items in groups.items()))

    async def routed(self, route_id: str, net_by_deposit: Mapping[str, Decimal], users: Mapping[str, str]) -> None:
        groups = split_by_shard(users.items(), len(self.shards), lambda item: item[1])
        await asyncio.gather(*(s.routed.remote(route_id, dict(net_by_deposit), dict(groups.get(k, ())))
                               for k, s in enumerate(self.shards)))

    async def reverse(self, reversals: Sequence[DepositReversal]) -> None:
        groups = split_by_shard(reversals, len(self.shards), lambda r: r.user)
        await asyncio.gather(*(self.shards[k].reverse.remote(items) for k, items in groups.items()))


class ShardedTokenSink:
    """chain's hand-over of index-token deposits to the order-book shards: each deposit to its sender's shard, one
    call per shard per batch; a reorg's keys to every shard (a key alone names no user: each shard takes back only
    what it credited). Both idempotent per deposit key."""

    def __init__(self, shards: Sequence[Any]) -> None:
        self.shards = list(shards)

    async def credit(self, deposits: Sequence[TokenDeposit]) -> None:
        groups = split_by_shard(deposits, len(self.shards), lambda d: d.user)
        await asyncio.gather(*(self.shards[k].credit_tokens.remote(items) for k, items in groups.items()))

    async def reverse(self, deposit_keys: Sequence[str]) -> None:
        await asyncio.gather(*(s.reverse_tokens.remote(list(deposit_keys)) for s in self.shards))


class ShardedApp:
    """The application interface over every shard: requests split by user, one `handle` call per shard, the
    answers put back in request order (what the gateway actor will host)."""

    def __init__(self, shards: Sequence[Any], quoter: Any = None) -> None:
        """`quoter`: the solver (it has the baskets and the live books), or a function that finds it (it may start
        after the gateway); quote requests go to it in one call per batch."""
        self.shards = list(shards)
        self.quoter = quoter

    async def _quote(self, requests: Sequence[NewQuote]) -> list[list[AppResponse]]:
        try:
            quoter = self.quoter() if callable(self.quoter) else self.quoter
            return await quoter.quote.remote(list(requests))
        except Exception as e:  # noqa: BLE001  (no solver yet, or restarting: the user may ask again)
            log.warning("quotes unavailable: %s", e)
            return [[QuoteRefused(r.user, r.client_quote_id, ReasonCode.MARKET_UNAVAILABLE,
                                  "quotes are unavailable right now; retry")] for r in requests]

    async def handle(self, requests: Sequence[AppRequest]) -> list[AppResponse]:
        n = len(self.shards)
        groups: dict[int, list[int]] = {}
        quotes: list[int] = []
        for i, r in enumerate(requests):
            if self.quoter is not None and isinstance(r, NewQuote):
                quotes.append(i)
                continue
            groups.setdefault(shard_of_user(r.user.address, n), []).append(i)
        keys = list(groups)
        calls = [self.shards[k].handle_each.remote([requests[i] for i in groups[k]]) for k in keys]
        if quotes:
            calls.append(self._quote([requests[i] for i in quotes]))  # type: ignore[misc]
        answers = await asyncio.gather(*calls)
        per_request: list[list[AppResponse]] = [[] for _ in requests]
        for k, answer in zip(keys, answers):
            for i, responses in zip(groups[k], answer):
                per_request[i] = responses
        if quotes:
            for i, responses in zip(quotes, answers[-1]):
                per_request[i] = responses
        return [resp for responses in per_request for resp in responses]
