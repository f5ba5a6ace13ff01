"""A user's withdrawal from the signed request to the exchange's payout on Base, over the real parts: an order shard
(the actor's class outside Ray) on a real redis-server, the withdrawal actor's body, and the simulator's withdrawal
API through ccxt. The shard holds the amount when it accepts (refusals hold nothing, a repeat is answered as the
first), the actor applies the exchange withdrawal once under the withdrawal's withdrawOrderId, follows the history
to "completed" with its txId, survives a restart at its stage, and a refusal by the exchange gives the hold back;
every stage reaches the user as a report through the shard's reports hand-off."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from actors.order_books import IndexOrderBooks, OrderBooksOptions, report_of
from actors.withdrawals import WithdrawalDesk, WithdrawalsOptions
from core.chain_events import CollateralDeposit
from core.clock import SystemClock
from core.withdrawal import WithdrawalStage, withdrawal_id_of
from exchange.gateway import BinanceGateway
from exchange.simulator.config import (TEST_API_KEY, TEST_SECRET, AccountSpec, PriceProcessConfig, SimulatorConfig,
                                       WithdrawConfig)
from exchange.simulator.server import Simulator
from protocol.envelope import UserRef
from protocol.indexmaker_app import Withdraw, WithdrawalAccepted, WithdrawalProgress, WithdrawalRefused
from protocol.reason_codes import ReasonCode
from store.streams import shard_reports
from world.ports import LOOPBACK

INDEX = "SY100"
USER = "0x" + "7d" * 20
TO = "0x" + "22" * 20
BASE_WALLET = "0x" + "3b" * 20
ARBITRUM = 42161
FEE = Decimal("0.1")  # the simulator's USDC withdrawal fee on BASE
PREFIX = "wd-orders"
WAIT_S = 60


class MovableClock:
    """System time plus an offset the test moves (and moves back, so that signed requests stay in recvWindow)."""

    def __init__(self) -> None:
        self.offset = 0

    def now_ms(self) -> int:
        return SystemClock().now_ms() + self.offset


def later(sim: Simulator, clock: MovableClock, ms: int) -> None:
    clock.offset = ms
    sim.advance_withdrawals()
    clock.offset = 0


async def ledger_of(shard) -> dict:  # noqa: ANN001
    return (await shard.user(USER))["ledger"]


def simulator_config() -> SimulatorConfig:
    # The exchange account holds 300: the first withdrawal (250) fits, a second of 200 does not.
    return SimulatorConfig(host=LOOPBACK, process=PriceProcessConfig(update_ms=0, trade_percent=0),
                           symbols=("BTCUSDC",), withdrawals=WithdrawConfig(approval_ms=60_000, processing_ms=60_000),
                           accounts=[AccountSpec(TEST_API_KEY, TEST_SECRET, {"USDC": Decimal("300")})])


def test_a_withdrawal_is_held_applied_once_and_completed_on_base(redis_server, monkeypatch):
    redis_server.client().flushall()
    monkeypatch.setattr("actors.order_books.tune_gc_once", lambda: None)
    user = UserRef(ARBITRUM, USER)

    async def run() -> None:
        clock = MovableClock()
        shard = IndexOrderBooks.__ray_metadata__.modified_class(0, OrderBooksOptions(
            redis_server.url, 1, (INDEX,), key_prefix=PREFIX, solver_name=None, withdrawal_minimum=Decimal("5"),
            withdrawal_chains=frozenset({ARBITRUM})))
        await shard.credit([CollateralDeposit(ARBITRUM, "0x01", 0, 1, USER, Decimal("1000"))])

        def ask(cid: str, amount: str, chain: int = ARBITRUM) -> Withdraw:
            return Withdraw(user, cid, Decimal(amount), TO, chain, None)

        answers = await shard.handle([ask("w-1", "250"), ask("w-1", "250"), ask("w-big", "750.000001"),
                                      ask("w-small", "4.99"), ask("w-base", "10", 8453), ask("w-1", "20"),
                                      ask("w-2", "200")])
        assert answers[:2] == [WithdrawalAccepted(user, "w-1")] * 2  # a repeat is answered as the first
        assert [(a.withdrawal_id, a.code) for a in answers[2:6]] == [
            ("w-big", ReasonCode.INSUFFICIENT_COLLATERAL), ("w-small", ReasonCode.BELOW_MINIMUM),
            ("w-base", ReasonCode.UNSUPPORTED_DESTINATION), ("w-1", ReasonCode.DUPLICATE_WITHDRAWAL_ID)]
        assert all(isinstance(a, WithdrawalRefused) for a in answers[2:6])
        assert answers[6] == WithdrawalAccepted(user, "w-2")
        ledger = await ledger_of(shard)
        assert (Decimal(ledger["available"]), Decimal(ledger["held"])) == (Decimal("550"), Decimal("450"))

        async with Simulator(simulator_config(), clock=clock) as sim:
            options = WithdrawalsOptions(redis_server.url, 1, BASE_WALLET, sim.url, sim.ws_url, TEST_API_KEY,
                                         TEST_SECRET, key_prefix="wd-test", poll_ms=100)

            def desk() -> WithdrawalDesk:
                gw = BinanceGateway(sim.url, sim.ws_url, TEST_API_KEY, TEST_SECRET)
                return WithdrawalDesk(options, exchange=gw,
                                      shard_call=lambda k, reports, done: shard.withdrawal_progress(reports, done))

            first = desk()
            await first.start()
            first._task.cancel()  # the test ticks it itself
            requests = await shard.withdrawal_requests()
            assert sorted(r.client_id for r in requests) == ["w-1", "w-2"]
            # w-1 reaches the exchange first (it has room for one of the two)
            assert await first.submit(0, [r for r in requests if r.client_id == "w-1"]) == 1
            await first.tick()
            assert await first.submit(0, requests) == 1
            assert await first.submit(0, requests) == 0  # a push again (a restarted shard): nothing new
            w1, w2 = withdrawal_id_of(USER, "w-1"), withdrawal_id_of(USER, "w-2")

            await first.tick()
            assert first.withdrawals[w1].stage is WithdrawalStage.APPLIED
            assert first.withdrawals[w2].stage is WithdrawalStage.RELEASED  # the exchange has 50 left, not 200
            assert "WithdrawInsufficientBalance" in first.withdrawals[w2].reason
            gw = first._exchange
            rows = await gw.fetch_withdrawals("USDC", first.withdrawals[w1].withdraw_order_id)
            assert [(r.amount, r.fee, r.address, r.network) for r in rows] == [
                (Decimal("249.9"), FEE, BASE_WALLET, "BASE")]
            ledger = await ledger_of(shard)  # the refused one's hold is back, whole
            assert (Decimal(ledger["available"]), Decimal(ledger["held"])) == (Decimal("750"), Decimal("250"))
            assert ledger["fees_charged"] == "0" and ledger["withdrawn"] == "0"

            await first.stop()  # a restart: the next one reads the records and goes on from the stage
            second = desk()
            await second.start()
            second._task.cancel()
            assert second.withdrawals[w1].stage is WithdrawalStage.APPLIED and w2 in second.settled
            assert await second.submit(0, await shard.withdrawal_requests()) == 0
            await second.tick()  # still processing at the exchange: nothing moves
            assert second.withdrawals[w1].stage is WithdrawalStage.APPLIED
            later(sim, clock, 60_000)  # approved: processing
            await second.tick()
            assert second.withdrawals[w1].stage is WithdrawalStage.APPLIED
            later(sim, clock, 120_000)  # sent: completed with its txId
            await second.tick()
            w = second.withdrawals[w1]
            assert w.stage is WithdrawalStage.ON_BASE and w.exchange_tx and w.exchange_tx.startswith("0x")
            assert len(await second._exchange.fetch_withdrawals("USDC", w.withdraw_order_id)) == 1  # applied once
            assert (await second.inspect())["stages"] == {"on_base": 1, "released": 1}
            await second.stop()

        reports = [report_of(raw).response for _, raw in await shard_reports(PREFIX, 0).since(shard._redis, 0)]
        stages = [(r.withdrawal_id, r.report.stage.value) for r in reports if isinstance(r, WithdrawalProgress)]
        # The restart told w-1's stage again (a report lost between its record and the shard is never lost);
        # w-2, settled, is not told again.
        assert stages == [("w-1", "reserved"), ("w-1", "applied"), ("w-2", "reserved"), ("w-2", "released"),
                          ("w-1", "applied"), ("w-1", "on_base")]
        released = next(r.report for r in reports
                        if isinstance(r, WithdrawalProgress) and r.report.stage == "released")
        assert released.fees == 0 and "WithdrawInsufficientBalance" in released.reason
        ledger = await ledger_of(shard)
        assert (Decimal(ledger["available"]), Decimal(ledger["held"])) == (Decimal("750"), Decimal("250"))
        await shard._redis.aclose()

    asyncio.run(asyncio.wait_for(run(), WAIT_S))
