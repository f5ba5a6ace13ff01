"""The simulator's withdrawals as Binance's wallet API serves them, seen through ccxt (exchange/gateway.py): the
debit of amount + fee, the statuses on the simulator's clock, the history filters, a repeated withdrawOrderId, the
refusals with Binance's codes, a rejection's refund, the snapshot, and a real payout on the local Base chain."""
from __future__ import annotations

from decimal import Decimal

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

import aiohttp
import pytest
from web3 import Web3

from chain.keys import DEV_MNEMONIC, derive_account
from core.clock import SystemClock
from exchange import errors
from exchange.gateway import BinanceGateway
from exchange.simulator.chain_withdrawals import WithdrawChain
from exchange.simulator.config import (
    TEST_API_KEY, TEST_SECRET, AccountSpec, PriceProcessConfig, SimulatorConfig, WithdrawConfig,
)
from exchange.simulator.persistence import snapshot
from exchange.simulator.server import Simulator
from world.ports import LOOPBACK
from tests.integration.chain_world import chain_world, chain_world_module  # noqa: F401  (fixtures)
from world.contracts_deployer import load_artifact, mint_usdc
from world.evm_signer import EvmSigner
from world.local_exchange import LocalExchange, LocalExchangeConfig

USER = "0x" + "5a" * 20
FEE = Decimal("0.1")  # WithdrawConfig's default for USDC on BASE


class MovableClock:
    """System time plus an offset a test moves (then moves back, so that signed requests stay in recvWindow)."""

    def __init__(self) -> None:
        self.offset = 0

    def now_ms(self) -> int:
        return SystemClock().now_ms() + self.offset


def config(**kw) -> SimulatorConfig:
    withdrawals = WithdrawConfig(approval_ms=60_000, processing_ms=60_000,
                                 keys_without_withdraw=frozenset({"noWithdrawKey"}))
    accounts = [AccountSpec(TEST_API_KEY, TEST_SECRET, {"USDC": Decimal("1000")}),
                AccountSpec("noWithdrawKey", "noWithdrawSecret", {"USDC": Decimal("1000")})]
    return SimulatorConfig(host=LOOPBACK, process=PriceProcessConfig(update_ms=0, trade_percent=0),
                           symbols=("BTCUSDC",), withdrawals=withdrawals, accounts=accounts, **kw)


@asynccontextmanager
async def exchange_and_client(cfg: SimulatorConfig | None = None, **kw) -> AsyncIterator[tuple]:
    """A started simulator and a ccxt client of its test account (closed after)."""
    async with Simulator(cfg or config(), **kw) as sim:
        gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET)
        try:
            yield sim, gw
        finally:
            await gw.close()


async def free_usdc(gw: BinanceGateway) -> Decimal:
    return (await gw.fetch_balance())["USDC"].free


def later(sim: Simulator, clock: MovableClock, ms: int) -> None:
    """The simulator's clock `ms` after the test began: the withdrawals move on; then back to now for the next
    signed request."""
    clock.offset = ms
    sim.advance_withdrawals()
    clock.offset = 0


async def test_withdrawal_debits_amount_plus_fee_and_completes_on_the_clock():
    clock = MovableClock()
    async with exchange_and_client(config(), clock=clock) as (sim, gw):
        before = await free_usdc(gw)
        wid = await gw.withdraw("USDC", Decimal("250"), USER, "BASE", "wd-1")
        assert await free_usdc(gw) == before - Decimal("250") - FEE

        (row,) = await gw.fetch_withdrawals("USDC", "wd-1")
        assert (row.id, row.status, row.amount, row.fee, row.network, row.address, row.tx_id) == (
            wid, 2, Decimal("250"), FEE, "BASE", USER, None)
        assert row.info["applyTime"] and "completeTime" not in row.info

        later(sim, clock, 60_000)
        (row,) = await gw.fetch_withdrawals("USDC", "wd-1")
        assert row.status == 4 and row.tx_id is None

        later(sim, clock, 120_000)
        (row,) = await gw.fetch_withdrawals("USDC", "wd-1")
        assert row.completed and row.tx_id and row.tx_id.startswith("0x") and row.info["completeTime"]
        assert await free_usdc(gw) == before - Decimal("250") - FEE  # debited once, whatever the status
        # The status filter and the id list filter of Binance's history.
        done = await gw.ccxt.sapiGetCapitalWithdrawHistory({"status": 6, "idList": wid})
        assert [r["id"] for r in done] == [wid]
        assert await gw.ccxt.sapiGetCapitalWithdrawHistory({"status": 2}) == []


async def test_same_withdraw_order_id_twice_is_two_withdrawals():
    """Binance documents no uniqueness for withdrawOrderId: a second apply is a second withdrawal, which is why the
    client looks the id up before applying again."""
    async with exchange_and_client(config()) as (sim, gw):
        before = await free_usdc(gw)
        first = await gw.withdraw("USDC", Decimal("10"), USER, "BASE", "wd-dup")
        second = await gw.withdraw("USDC", Decimal("10"), USER, "BASE", "wd-dup")
        assert first != second
        rows = await gw.fetch_withdrawals("USDC", "wd-dup")
        assert sorted(r.id for r in rows) == sorted([first, second])
        assert await free_usdc(gw) == before - 2 * (Decimal("10") + FEE)
        assert await gw.fetch_withdrawals("USDC", "wd-other") == []


async def test_ensure_withdrawal_looks_the_id_up_before_applying():
    async with exchange_and_client(config()) as (sim, gw):
        before = await free_usdc(gw)
        first = await gw.ensure_withdrawal("USDC", Decimal("10"), USER, "BASE", "wd-once")
        again = await gw.ensure_withdrawal("USDC", Decimal("10"), USER, "BASE", "wd-once")
        assert first == again
        assert [r.id for r in await gw.fetch_withdrawals("USDC", "wd-once")] == [first]
        assert await free_usdc(gw) == before - Decimal("10") - FEE


async def test_refusals_carry_binance_codes_and_debit_nothing():
    async with Simulator(config()) as sim:
        gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET)
        barred = BinanceGateway(sim.url, sim.ws_url, "noWithdrawKey", "noWithdrawSecret")
        try:
            before = await free_usdc(gw)
            with pytest.raises(errors.WithdrawBelowMinimum) as below:
                await gw.withdraw("USDC", Decimal("0.5"), USER, "BASE", "wd-small")
            assert below.value.code == -4022
            with pytest.raises(errors.WithdrawInsufficientBalance) as poor:
                await gw.withdraw("USDC", before, USER, "BASE", "wd-all")  # the fee comes on top
            assert poor.value.code == -4026
            with pytest.raises(errors.WithdrawNetworkUnknown) as unknown:
                await gw.withdraw("USDC", Decimal("10"), USER, "SOLANA", "wd-sol")
            assert unknown.value.code == -4018
            with pytest.raises(errors.WithdrawNotPermitted) as barred_err:
                await barred.withdraw("USDC", Decimal("10"), USER, "BASE", "wd-barred")
            assert barred_err.value.code == -1002
            with pytest.raises(errors.WithdrawRefused) as bad_address:
                await gw.withdraw("USDC", Decimal("10"), "0x1234", "BASE", "wd-addr")
            assert bad_address.value.code == -4033
            assert await free_usdc(gw) == before
            assert await gw.fetch_withdrawals("USDC") == []
            assert await free_usdc(barred) == Decimal("1000")
        finally:
            await gw.close()
            await barred.close()


async def test_capital_config_lists_the_withdraw_fee_and_minimum_per_network():
    async with exchange_and_client(config()) as (sim, gw):
        coins = {c["coin"]: c for c in await gw.ccxt.sapiGetCapitalConfigGetall()}
        nets = {n["network"]: n for n in coins["USDC"]["networkList"]}
        base = nets["BASE"]
        assert (base["withdrawFee"], base["withdrawMin"], base["withdrawEnable"], base["isDefault"]) == (
            "0.1", "1", True, True)
        assert Decimal(coins["USDC"]["free"]) == await free_usdc(gw)


async def test_rejected_withdrawal_gives_amount_and_fee_back_and_survives_a_snapshot():
    async with exchange_and_client(config()) as (sim, gw):
        before = await free_usdc(gw)
        wid = await gw.withdraw("USDC", Decimal("40"), USER, "BASE", "wd-rej")
        account = sim.engine.accounts[TEST_API_KEY]
        sim.withdrawals.reject(account, wid, "Risk control")
        sim.withdrawals.reject(account, wid, "Risk control")  # a second rejection changes nothing
        (row,) = await gw.fetch_withdrawals("USDC", "wd-rej")
        assert row.failed and row.status == 3 and row.info["info"] == "Risk control"
        assert await free_usdc(gw) == before
        failing = await gw.withdraw("USDC", Decimal("7"), USER, "BASE", "wd-fail")
        (w,) = [w for w in sim.withdrawals.by_account[TEST_API_KEY] if w.id == failing]
        sim.fail_withdrawal(w, "The withdrawal transaction failed on chain.")  # what the payer does on a revert
        (row,) = await gw.fetch_withdrawals("USDC", "wd-fail")
        assert row.failed and row.status == 5 and await free_usdc(gw) == before
        kept = await gw.withdraw("USDC", Decimal("5"), USER, "BASE", "wd-kept")
        saved = snapshot(sim)
    async with exchange_and_client(config(), state=saved) as (resumed, gw):
        rows = {r.withdraw_order_id: r for r in await gw.fetch_withdrawals("USDC")}
        assert rows["wd-rej"].status == 3 and rows["wd-kept"].id == kept and rows["wd-kept"].status == 2
        new = await gw.withdraw("USDC", Decimal("5"), USER, "BASE", "wd-new")
        assert new not in (wid, kept)  # ids are never handed out twice


def funded_hot_wallet(world, index: int, usdc_units: int):
    """The dev mnemonic's account `index` as an exchange hot wallet on Base: gas money and `usdc_units` of USDC."""
    base = world.state.chain("base")
    w3 = Web3(Web3.HTTPProvider(base.rpc_url))
    hot = derive_account(DEV_MNEMONIC, index)
    world.node("base").call("anvil_setBalance", hot.address, hex(10**18))
    mint_usdc(EvmSigner(w3, world.key("admin")), base.usdc, hot.address, usdc_units)
    return hot, w3, w3.eth.contract(address=base.usdc, abi=load_artifact("ExpandedERC20").abi)


async def test_withdrawal_is_paid_on_base_from_the_hot_wallet(chain_world):
    hot, w3, usdc = funded_hot_wallet(chain_world, 40, 1_000_000_000)
    base = chain_world.state.chain("base")
    to = Web3.to_checksum_address("0x" + "7c" * 20)
    chain = WithdrawChain("BASE", base.rpc_url, base.usdc, confirmations=2, poll_ms=600_000,
                          hot_wallet_key=hot.key.hex())
    cfg = config(withdraw_chains=(chain,))
    cfg.withdrawals.approval_ms = 0
    async with exchange_and_client(cfg) as (sim, gw):
        await gw.withdraw("USDC", Decimal("123.456789"), to, "BASE", "wd-chain")
        payer = sim.withdrawal_payers[0]
        assert await payer.poll_once() == 0  # sent, one confirmation: not completed yet
        (row,) = await gw.fetch_withdrawals("USDC", "wd-chain")
        assert row.status == 4
        chain_world.mine("base", 1)
        assert await payer.poll_once() == 1
        assert await payer.poll_once() == 0  # completed once; never paid again
        (row,) = await gw.fetch_withdrawals("USDC", "wd-chain")
        assert row.completed
        receipt = w3.eth.get_transaction_receipt(row.tx_id)
        assert receipt["status"] == 1 and payer.sent == 1
        assert usdc.functions.balanceOf(to).call() == 123_456_789
        # A broadcast lost on the way: the next poll sends the same signed bytes again, and it is paid once.
        eth = payer.w3.eth
        broadcast = eth.send_raw_transaction
        sent: list = []

        async def lossy(raw):
            sent.append(raw)
            if len(sent) == 1:
                raise ConnectionError("broadcast lost")
            return await broadcast(raw)

        eth.send_raw_transaction = lossy
        await gw.withdraw("USDC", Decimal("2"), to, "BASE", "wd-lost")
        with pytest.raises(ConnectionError):
            await payer.poll_once()
        assert await payer.poll_once() == 0  # broadcast again (mined at once by anvil): one confirmation
        chain_world.mine("base", 1)
        assert await payer.poll_once() == 1
        assert len(sent) == 2 and sent[0] == sent[1] and payer.sent == 2
        (lost,) = await gw.fetch_withdrawals("USDC", "wd-lost")
        assert lost.completed and usdc.functions.balanceOf(to).call() == 125_456_789


async def test_the_local_worlds_exchange_pays_withdrawals_from_its_hot_wallet(chain_world):
    """world/local_exchange.py with a hot wallet: the exchange process pays on Base by itself (its own loops)."""
    _, w3, usdc = funded_hot_wallet(chain_world, 41, 50_000_000)
    to = Web3.to_checksum_address("0x" + "3d" * 20)
    with LocalExchange(chain_world.state, LocalExchangeConfig(), hot_wallet_index=41) as exchange:
        gw = exchange.gateway()
        try:
            await gw.withdraw("USDC", Decimal("20"), to, "BASE", "wd-world")
            for _ in range(200):  # the exchange's own loops pay and complete it; each read is one request
                (row,) = await gw.fetch_withdrawals("USDC", "wd-world")
                if row.completed:
                    break
                await asyncio.sleep(0.05)  # the history is only readable by polling (as on Binance)
            assert row.completed and w3.eth.get_transaction_receipt(row.tx_id)["status"] == 1
            assert usdc.functions.balanceOf(to).call() == 20_000_000
        finally:
            await gw.close()


async def test_the_user_stream_sees_the_debit_and_the_refund_of_a_rejection():
    async with exchange_and_client(config()) as (sim, gw):
        before = await free_usdc(gw)
        watch = asyncio.ensure_future(gw.watch_balance())
        await asyncio.wait_for(sim.user_streams.subscribed.wait(), 10)
        wid = await gw.withdraw("USDC", Decimal("30"), USER, "BASE", "wd-stream")
        assert (await asyncio.wait_for(watch, 10))["USDC"].free == before - Decimal("30") - FEE
        watch = asyncio.ensure_future(gw.watch_balance())
        async with aiohttp.ClientSession() as http:  # the exchange's risk team, through the admin endpoint
            async with http.post(sim.url + "/_admin/withdraw/reject", json={"id": wid, "info": "AML"}) as r:
                assert r.status == 200 and (await r.json())["status"] == 3
            async with http.post(sim.url + "/_admin/withdraw/reject", json={"id": "nope"}) as r:
                assert r.status == 400 and (await r.json())["code"] == -4029
        assert (await asyncio.wait_for(watch, 10))["USDC"].free == before
