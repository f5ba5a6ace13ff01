"""A simulated exchange account: balances (free/locked, exact Decimal), its orders, trades and deposits.

Balances only move through `credit`, `debit_free`, `lock`, `unlock` and `spend_locked`, each of which refuses to
make a balance negative: a bug in the engine shows up as an exception, never as money created from nothing.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from decimal import Decimal

from core.money import ZERO
from exchange.simulator.orders import Deposit, Fill, Order


class BalanceError(Exception):
    pass


class Account:
    def __init__(self, account_id: str, api_key: str, secret: str) -> None:
        self.id = account_id
        self.api_key = api_key
        self.secret = secret
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        self.update_time = 0
        #: Assets whose balance changed since the last outboundAccountPosition.
        self.dirty: set[str] = set()
        self.orders: dict[tuple[str, int], Order] = {}  # (symbol, orderId) -> every order ever placed
        self.open_orders: dict[tuple[str, int], Order] = {}
        self.open_by_client_id: dict[tuple[str, str], Order] = {}  # (symbol, clientOrderId) -> open order
        self.last_by_client_id: dict[tuple[str, str], Order] = {}  # latest order with that client id (query)
        self.open_count: defaultdict[str, int] = defaultdict(int)  # per symbol, for MAX_NUM_ORDERS
        self.fills: defaultdict[str, list[Fill]] = defaultdict(list)  # per symbol, in trade order
        self.deposit_addresses: dict[tuple[str, str], str] = {}  # (coin, network) -> address
        self.network_addresses: dict[str, str] = {}  # network -> address (configured)
        self.deposits: list[Deposit] = []
        #: The key's "Enable Spot & Margin Trading" restriction: off, /api/v3/account says canTrade false and an
        #: order is refused with -2015, as Binance answers a key without trading permission.
        self.can_trade = True

    # ---------------------------------------------------------------- balances
    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        return self.free.get(asset, ZERO), self.locked.get(asset, ZERO)

    def _touch(self, asset: str, now: int) -> None:
        self.dirty.add(asset)
        self.update_time = now

    def credit(self, asset: str, amount: Decimal, now: int) -> None:
        if amount < 0:
            raise BalanceError(f"negative credit {amount} {asset}")
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self._touch(asset, now)

    def debit_free(self, asset: str, amount: Decimal, now: int) -> None:
        have = self.free.get(asset, ZERO)
        if amount < 0 or have < amount:
            raise BalanceError(f"cannot debit {amount} {asset} from free {have}")
        self.free[asset] = have - amount
        self._touch(asset, now)

    def lock(self, asset: str, amount: Decimal, now: int) -> None:
        have = self.free.get(asset, ZERO)
        if amount < 0 or have < amount:
            raise BalanceError(f"cannot lock {amount} {asset} of free {have}")
        self.free[asset] = have - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount
        self._touch(asset, now)

    def unlock(self, asset: str, amount: Decimal, now: int) -> None:
        held = self.locked.get(asset, ZERO)
        if amount < 0 or held < amount:
            raise BalanceError(f"cannot unlock {amount} {asset} of locked {held}")
        self.locked[asset] = held - amount
        self.free[asset] = self.free.get(asset, ZERO) + amount
        self._touch(asset, now)

    def spend_locked(self, asset: str, amount: Decimal, now: int) -> None:
        held = self.locked.get(asset, ZERO)
        if amount < 0 or held < amount:
            raise BalanceError(f"cannot spend {amount} {asset} of locked {held}")
        self.locked[asset] = held - amount
        self._touch(asset, now)

    def take_dirty(self) -> list[str]:
        assets = sorted(self.dirty)
        self.dirty.clear()
        return assets

    # ---------------------------------------------------------------- orders
    def add_open(self, order: Order) -> None:
        key = (order.symbol, order.order_id)
        self.orders[key] = order
        self.open_orders[key] = order
        self.open_by_client_id[(order.symbol, order.client_order_id)] = order
        self.last_by_client_id[(order.symbol, order.client_order_id)] = order
        self.open_count[order.symbol] += 1

    def record_closed(self, order: Order) -> None:
        """An order that never rested (rejected before the book, or finished on entry)."""
        self.orders[(order.symbol, order.order_id)] = order
        self.last_by_client_id[(order.symbol, order.client_order_id)] = order

    def close(self, order: Order) -> None:
        key = (order.symbol, order.order_id)
        if self.open_orders.pop(key, None) is not None:
            self.open_count[order.symbol] -= 1
            cid = (order.symbol, order.client_order_id)
            if self.open_by_client_id.get(cid) is order:
                del self.open_by_client_id[cid]

    # ---------------------------------------------------------------- deposits
    def deposit_address(self, coin: str, network: str) -> str:
        """The configured address for `network`, else a stable one derived from the account and network."""
        key = (coin, network)
        if key not in self.deposit_addresses:
            addr = self.network_addresses.get(network)
            if addr is None:
                digest = hashlib.sha256(f"{self.api_key}:{network}".encode()).hexdigest()
                addr = "0x" + digest[:40]
            self.deposit_addresses[key] = addr
        return self.deposit_addresses[key]
