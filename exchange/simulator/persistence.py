"""The simulator's state on disk: what a real exchange keeps when it restarts, so `indexmaker down` / `up` resumes.

Kept: accounts, balances, orders, trades, deposits, withdrawals, every id counter (an id is never handed out
twice), deposit cursors, and each symbol's mid (prices go on instead of jumping back). Not kept: the market maker's
ladder, ticker statistics, rate-limit windows, sessions. Written atomically (temp file, fsync, rename), amounts as
strings."""
from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.side import Side
from exchange.simulator.accounts import Account
from exchange.simulator.orders import Deposit, Fill, Order, Withdrawal

FORMAT = 1


def _enc(value: Any) -> Any:
    if isinstance(value, Side):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _record(obj: Any) -> dict[str, Any]:
    return {f.name: _enc(getattr(obj, f.name)) for f in fields(obj)}


def _order(d: dict[str, Any]) -> Order:
    kw = dict(d)
    kw["side"] = Side(kw["side"])
    for name in ("price", "orig_qty", "orig_quote_qty", "executed_qty", "cum_quote", "locked", "remaining"):
        kw[name] = Decimal(kw[name])
    return Order(**kw)


def _fill(d: dict[str, Any]) -> Fill:
    kw = dict(d)
    for name in ("price", "qty", "quote_qty", "commission"):
        kw[name] = Decimal(kw[name])
    return Fill(**kw)


def _deposit(d: dict[str, Any]) -> Deposit:
    return Deposit(**{**d, "amount": Decimal(d["amount"])})


def peek_counter(counter: itertools.count) -> tuple[int, itertools.count]:
    """The next value of a counter without losing it (itertools.count cannot be read: take one, make a new one)."""
    value = next(counter)
    return value, itertools.count(value)


def snapshot(sim: Any) -> dict[str, Any]:
    """Everything listed in the module docstring, as plain JSON data. Runs on the simulator's event loop thread."""
    e = sim.engine
    counters: dict[str, Any] = {"orders": {}, "trades": {}}
    for name in ("_order_ids", "_trade_ids"):
        table = getattr(e, name)
        for symbol in list(table):
            value, table[symbol] = peek_counter(table[symbol])
            counters["orders" if name == "_order_ids" else "trades"][symbol] = value
    counters["exec"], e._exec_ids = peek_counter(e._exec_ids)  # noqa: SLF001
    counters["deposit"], e._deposit_ids = peek_counter(e._deposit_ids)  # noqa: SLF001
    accounts = []
    for api_key, a in e.accounts.items():
        accounts.append({
            "id": a.id, "api_key": api_key, "secret": a.secret,
            "free": {k: str(v) for k, v in a.free.items()}, "locked": {k: str(v) for k, v in a.locked.items()},
            "update_time": a.update_time,
            "orders": [_record(o) for o in a.orders.values()],
            "open": [[s, oid] for (s, oid) in a.open_orders],
            "fills": {s: [_record(f) for f in rows] for s, rows in a.fills.items()},
            "deposits": [_record(d) for d in a.deposits],
            "deposit_addresses": [[c, n, addr] for (c, n), addr in a.deposit_addresses.items()],
            "network_addresses": dict(a.network_addresses),
        })
    mids = {}
    for symbol, proc in sim.processes.items():
        mids[symbol] = str(proc.tick * proc.bid_top + proc.tick * proc.spread / 2)  # exact: tick multiples
    return {
        "format": FORMAT, "port": sim.port, "accounts": accounts, "counters": counters,
        "book_update_ids": {s: b.update_id for s, b in e.books.items()},
        "deposit_cursors": {w.chain.network: w.cursor for w in sim.deposit_watchers},
        "mids": mids,
        "withdrawals": {"next_id": peek_withdrawal_id(sim.withdrawals),
                        "by_account": {k: [_record(w) for w in rows]
                                       for k, rows in sim.withdrawals.by_account.items()}},
    }


def peek_withdrawal_id(desk: Any) -> int:
    value, desk.ids = peek_counter(desk.ids)
    return value


def restore_withdrawals(desk: Any, data: dict[str, Any]) -> None:
    """The withdrawals of a snapshot into a fresh desk (absent in snapshots older than withdrawals: none)."""
    saved = data.get("withdrawals")
    if not saved:
        return
    desk.ids = itertools.count(int(saved["next_id"]))
    desk.by_account = {k: [Withdrawal(**{**w, "amount": Decimal(w["amount"]), "fee": Decimal(w["fee"])})
                           for w in rows] for k, rows in saved["by_account"].items()}


def seed_prices(data: dict[str, Any]) -> dict[str, Decimal]:
    """The saved mids, to pass as `Simulator(seed_prices=...)` (prices go on from where they were)."""
    return {s: Decimal(p) for s, p in data.get("mids", {}).items()}


def deposit_cursor(data: dict[str, Any], network: str) -> int | None:
    value = data.get("deposit_cursors", {}).get(network)
    return None if value is None else int(value)


def restore(engine: Any, data: dict[str, Any]) -> None:
    """Put a snapshot back into a fresh matching engine, BEFORE the market maker seeds its books (the server does
    this in its constructor): the accounts replace the configured ones, the id counters go on from where they were
    (so the market maker's new orders never reuse an id), resting user orders go back on their books."""
    if data.get("format") != FORMAT:
        raise ValueError(f"simulator snapshot format {data.get('format')!r}, expected {FORMAT}")
    e = engine
    e.accounts.clear()
    e._by_id.clear()  # noqa: SLF001
    c = data["counters"]
    for symbol, value in c["orders"].items():
        if symbol in e._order_ids:  # noqa: SLF001
            e._order_ids[symbol] = itertools.count(int(value))  # noqa: SLF001
    for symbol, value in c["trades"].items():
        if symbol in e._trade_ids:  # noqa: SLF001
            e._trade_ids[symbol] = itertools.count(int(value))  # noqa: SLF001
    e._exec_ids = itertools.count(int(c["exec"]))  # noqa: SLF001
    e._deposit_ids = itertools.count(int(c["deposit"]))  # noqa: SLF001
    for symbol, uid in data.get("book_update_ids", {}).items():
        book = e.books.get(symbol)
        if book is not None and int(uid) > book.update_id:
            book.update_id = int(uid)
    for row in data["accounts"]:
        a = Account(row["id"], row["api_key"], row["secret"])
        a.free = {k: Decimal(v) for k, v in row["free"].items()}
        a.locked = {k: Decimal(v) for k, v in row["locked"].items()}
        a.update_time = int(row["update_time"])
        a.network_addresses.update(row["network_addresses"])
        for coin, network, addr in row["deposit_addresses"]:
            a.deposit_addresses[(coin, network)] = addr
        a.deposits = [_deposit(d) for d in row["deposits"]]
        for s, rows in row["fills"].items():
            a.fills[s] = [_fill(f) for f in rows]
        open_keys = {(s, int(oid)) for s, oid in row["open"]}
        for d in row["orders"]:
            order = _order(d)
            if (order.symbol, order.order_id) in open_keys and order.symbol in e.books:
                a.add_open(order)
                if order.remaining > 0:
                    e.books[order.symbol].add(order)
            else:
                a.record_closed(order)
        e.accounts[a.api_key] = a
        e._by_id[a.id] = a  # noqa: SLF001


def save(data: dict[str, Any], path: Path) -> None:
    """Atomic write: temp file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".sim-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any] | None:
    """The saved snapshot, or None if there is none yet (a first start)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
