"""`indexmaker demo`: the main flow, end to end, on the local world, with three users and two indexes.

Each user deposits USDC on Arbitrum and sends an Index Order: Alice and Carol buy SY100, Bob SYAI, netted in the
same batches; Bob cancels part of his, Carol first sends one her collateral cannot cover. Events show as they
happen, then a summary per user and per index. `run_demo(system)` is the flow the e2e test asserts on."""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import core  # noqa: F401  (decimal context)

WAIT_S = 60.0
#: The indexes the demo serves (config/local.toml's entries): SY100, the largest basket, and one more.
DEMO_INDEXES = ("SY100", "SYAI")


@dataclass
class DemoUser:
    name: str
    deposit: Decimal
    #: (client order id, amount) of the orders sent; the first may be a bad one (see `bad`).
    orders: list[tuple[str, Decimal]]
    index: str = ""  # what the user buys ("" or an index not served: the first served index)
    cancel: tuple[str, Decimal] | None = None  # (client order id, amount to cancel)
    bad: str | None = None  # the client order id expected to be rejected
    address: str = ""
    key: Any = None
    reports: list[Any] = field(default_factory=list)  # every application message received, in order (Decoded)

    @property
    def good(self) -> list[str]:
        return [cl for cl, _ in self.orders if cl != self.bad]


def default_users() -> list[DemoUser]:
    return [
        DemoUser("alice", Decimal("1000"), [("a1", Decimal("400"))], index="SY100"),
        DemoUser("bob", Decimal("1500"), [("b1", Decimal("650.5"))], index="SYAI", cancel=("b1", Decimal("200"))),
        DemoUser("carol", Decimal("800"), [("c0", Decimal("5000")), ("c1", Decimal("500"))], index="SY100",
                 bad="c0"),
    ]


class ProgressView:
    """A compact text view: one line per event, plus a status line when the counters move."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.t0 = time.monotonic()
        self.last_status: tuple = ()

    def line(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.t0:6.2f}s] {text}")

    def status(self, routes: dict[str, int], batches: int, asset_orders: int, mints: int) -> None:
        key = (tuple(sorted(routes.items())), batches, asset_orders, mints)
        if key != self.last_status:
            self.last_status = key
            r = " ".join(f"{k}:{v}" for k, v in sorted(routes.items())) or "-"
            self.line(f"status  routes[{r}]  batches {batches}  exchange orders {asset_orders}  mints {mints}")


def _body_line(user: DemoUser, d: Any) -> str:
    b = d.body
    kind = type(b).__name__
    if kind == "NewIndexOrderReport":
        why = f" ({b.reason_code.name}: {b.reason})" if b.status == "rejected" else ""
        return f"{user.name:5} {b.client_order_id:3} order {b.status}{why}"
    if kind == "CancelIndexOrderReport":
        extra = f" cancelled {b.cancelled_amount}" if b.cancelled_amount is not None else ""
        why = f" ({b.reason})" if b.status == "rejected" else ""
        return f"{user.name:5} {b.client_order_id:3} cancel {b.status}{extra}{why}"
    if kind == "IndexOrderFill":
        return (f"{user.name:5} {b.client_order_id:3} fill  {b.status:11} units {b.filled_quantity}  spent "
                f"{b.collateral_spent}  rate {b.fill_rate}")
    if kind == "MintInvoice":
        quality = "" if b.shortfall_bps is None else f"  shortfall {b.shortfall_bps} bps"
        return (f"{user.name:5} {b.client_order_id:3} MINTED {b.minted_quantity} {b.symbol}  tx {str(b.mint_tx)[:12]}…"
                f"{quality}")
    return f"{user.name:5} {kind}"


async def _transfer(system: Any, user: DemoUser) -> str:
    """A real USDC transfer on Arbitrum from the user to custody (web3 is blocking: a thread)."""
    from web3 import Web3

    from chain.contracts import bind
    from world.evm_signer import EvmSigner

    arb = system.state.chain("arbitrum")

    def send() -> str:
        w3 = Web3(Web3.HTTPProvider(arb.rpc_url))
        usdc = bind(w3, arb).usdc
        units = int(user.deposit.scaleb(arb.usdc_decimals))  # whole USDC amounts: exact
        receipt = EvmSigner(w3, user.key).transact(
            usdc.functions.transfer(system.state.account("custody").address, units))
        return receipt["transactionHash"].hex()

    return await asyncio.to_thread(send)


async def _wait(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S, every_s: float = 0.05) -> Any:
    """Poll a condition held by other processes (actors, chains), bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout_s} s")
        await asyncio.sleep(every_s)  # polling interval of a condition another process makes true


async def run_demo(system: Any, users: list[DemoUser] | None = None, out: Callable[[str], None] = print
                   ) -> dict[str, Any]:
    """The demo's flow on a started LocalSystem. Returns {"users": [...], "invoices": {...}, "views": {...}}."""
    from chain.keys import DEV_MNEMONIC, derive_account
    from protocol.client import GatewayClient

    users = users or default_users()
    view = ProgressView(out)
    for u, ref in zip(users, system.state.users):
        u.key = derive_account(DEV_MNEMONIC, ref.index)
        u.address = u.key.address
        if u.index not in system.baskets:
            u.index = next(iter(system.baskets))
    solver, router, minter = system.actor("solver"), system.actor("router"), system.actor("minter")

    # 1. deposits: real transfers on Arbitrum, then the credit in each user's shard
    txs = await asyncio.gather(*(_transfer(system, u) for u in users))
    for u, tx in zip(users, txs):
        view.line(f"{u.name:5} deposited {u.deposit} USDC on Arbitrum  tx {tx[:12]}…")

    async def credited(u: DemoUser) -> bool:
        v = await system.shard(u.address).user.remote(u.address)
        return bool(v) and Decimal(v["ledger"]["credited"]) == u.deposit

    for u in users:
        await _wait(lambda u=u: credited(u), f"{u.name}'s deposit credited")
        view.line(f"{u.name:5} credited {u.deposit} USDC (orders shard)")

    # 2. orders over the websocket
    clients = {u.name: GatewayClient(system.gateway_url, u.key.key, chain_id=system.settings.chain.arbitrum_chain_id)
               for u in users}
    await asyncio.gather(*(c.connect() for c in clients.values()))
    done = asyncio.Event()

    def expected_done() -> bool:
        return all({d.body.client_order_id for d in u.reports if type(d.body).__name__ == "MintInvoice"}
                   >= set(u.good) for u in users)

    async def read(u: DemoUser) -> None:
        async for d in clients[u.name].reports():
            u.reports.append(d)
            view.line(_body_line(u, d))
            if expected_done():
                done.set()

    readers = [asyncio.create_task(read(u)) for u in users]

    async def send(u: DemoUser) -> None:
        c = clients[u.name]
        for cl, amount in u.orders:
            if u.cancel is not None and u.cancel[0] == cl:  # order and cancel leave together
                await asyncio.gather(c.new_order(cl, u.index, str(amount)),
                                     c.cancel_order(cl, u.index, str(u.cancel[1])))
            else:
                await c.new_order(cl, u.index, str(amount))

    routed = asyncio.Event()

    async def watch() -> None:
        while True:
            info, counts, mints = await asyncio.gather(router.inspect.remote(), solver.inspect.remote(),
                                                       minter.inspect.remote())
            routes: dict[str, int] = {}
            for r in info.get("routes", []):
                routes[r["stage"]] = routes.get(r["stage"], 0) + 1
            view.status(routes, counts["counts"]["batches"], counts["counts"]["asset_orders"],
                        mints["counts"]["minted"])
            if routes and set(routes) == {"credited"} and sum(routes.values()) >= len(users):
                routed.set()
            if routed.is_set() and done.is_set():
                return
            await asyncio.sleep(0.25)  # the refresh interval of the status line

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(send(u) for u in users))
        await asyncio.wait_for(done.wait(), WAIT_S)
        await asyncio.wait_for(watcher, WAIT_S)  # every deposit routed to the exchange too

        async def holds_settled() -> bool:  # a credited route charges its cost, then releases the rest of the hold
            views = [await system.shard(u.address).user.remote(u.address) for u in users]
            return all(v and Decimal(v["ledger"].get("held", "0")) == 0 for v in views)
        await _wait(holds_settled, "every route's hold settled")
    finally:
        for t in readers + [watcher]:
            t.cancel()
        await asyncio.gather(*readers, watcher, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients.values()), return_exceptions=True)

    views = {u.name: await system.shard(u.address).user.remote(u.address) for u in users}
    return {"users": users, "views": views}


def balance_of(system: Any, address: str, index: str) -> int:
    """`index`'s token base units held on Base (the chain that carries the index tokens)."""
    from web3 import Web3

    from chain.contracts import bind

    base = system.state.chain("base")
    token = bind(Web3(Web3.HTTPProvider(base.rpc_url)), base).index_tokens[index]
    return token.functions.balanceOf(Web3.to_checksum_address(address)).call()


def summary(system: Any, result: dict[str, Any]) -> list[str]:
    """One row per minted order: index, amount, spent, exchange fee, returned (dust + cancelled), assets bought,
    tokens minted, invoice id; per user the routing fee charged on the deposit and the tokens in the wallet; per
    index the orders, the units minted and its token's supply on Base."""
    head = (f"{'user':6}{'order':6}{'index':7}{'amount':>9}{'spent':>12}{'exch fee':>10}{'returned':>12}{'assets':>7}"
            f"{'minted':>23}  invoice")
    rows = [head, "-" * len(head)]
    for u in result["users"]:
        view = result["views"][u.name]
        invoices = view["invoices"]
        for d in u.reports:
            if type(d.body).__name__ != "MintInvoice":
                continue
            b = d.body
            returned = Decimal(b.amount_returned) + Decimal(b.amount_cancelled)
            inv = invoices.get(b.client_order_id, {})
            rows.append(f"{u.name:6}{b.client_order_id:6}{b.symbol:7}{b.total_amount:>9}{b.collateral_spent:>12}"
                        f"{Decimal(b.exchange_fee).quantize(Decimal('0.000001')):>10}{returned:>12}"
                        f"{len(b.lines):>7}{b.minted_quantity:>23}  {inv.get('invoice_id', '?')[:22]}…")
        ledger = view["ledger"]
        rows.append(f"{'':12}deposit {u.deposit}, routing fee {ledger['fees_charged']}, available "
                    f"{ledger['available']} USDC; wallet {Decimal(balance_of(system, u.address, u.index)).scaleb(-18)} "
                    f"{u.index} on Base")
    rows.append("")
    minted: dict[str, list[Decimal]] = {}
    for u in result["users"]:
        for d in u.reports:
            if type(d.body).__name__ == "MintInvoice":
                minted.setdefault(d.body.symbol, []).append(Decimal(d.body.minted_quantity))
    for index, units in sorted(minted.items()):
        rows.append(f"{index:7}{len(units)} orders, {sum(units)} units minted; token supply on Base "
                    f"{Decimal(supply_of(system, index)).scaleb(-18)}")
    return rows


def supply_of(system: Any, index: str) -> int:
    """`index`'s token totalSupply on Base (base units)."""
    from web3 import Web3

    from chain.contracts import bind

    base = system.state.chain("base")
    return bind(Web3(Web3.HTTPProvider(base.rpc_url)), base).index_tokens[index].functions.totalSupply().call()


def demo_settings() -> Any:
    """The defaults, serving DEMO_INDEXES as config/local.toml's registry describes them."""
    from core.config import REPO_ROOT, Settings

    registry = Settings.load(REPO_ROOT / "config" / "local.toml").indexes
    return Settings(indexes={k: registry[k] for k in DEMO_INDEXES})


def main(port: int | None = None) -> int:
    from world.launcher import LauncherOptions, LocalSystem

    t0 = time.monotonic()
    print("starting the local world (redis, anvil x2 + Across relayer, exchange simulator) and the actors …",
          flush=True)
    system = LocalSystem(LauncherOptions(gateway_port=port), demo_settings())
    try:
        system.start()
        served = ", ".join(f"{k} ({len(b.assets)} assets)" for k, b in system.baskets.items())
        print(f"up in {time.monotonic() - t0:.1f} s: gateway {system.gateway_url}, indexes {served}, "
              f"{len(system.symbols)} pairs, Ray namespace {system.namespace}", flush=True)
        result = asyncio.run(run_demo(system, out=lambda s: print(s, flush=True)))
        print()
        for row in summary(system, result):
            print(row)
        print(f"\ndemo done in {time.monotonic() - t0:.1f} s")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything …", file=sys.stderr)
        return 130
    finally:
        system.stop()
