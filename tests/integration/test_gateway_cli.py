"""`indexmaker order ...` against a real gateway: prints every report as it arrives and exits with a status that
says how the order ended."""
from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from core.chain_events import TokenDeposit
from core.invoice import InvoiceLine
from core.side import Side
from protocol.cli import run
from protocol.envelope import UserRef
from protocol.signature import Signer
from tests.integration.gateway_harness import WAIT_S, ServerThread, make_gateway
from world.redis_server import free_port


@pytest.fixture(scope="module")
def gateway():
    orders_seen = threading.Event()

    def build():  # noqa: ANN202
        server, app = make_gateway()
        handle = app.handle

        async def watched(requests):  # noqa: ANN001, ANN202
            responses = await handle(requests)
            orders_seen.set()
            return responses

        app.handle = watched  # type: ignore[method-assign]
        server.plugin._handle = watched  # type: ignore[attr-defined]
        return server, app

    with ServerThread(build) as gw:
        gw.orders_seen = orders_seen
        yield gw


@pytest.fixture
def user(gateway, monkeypatch):
    signer = Signer.generate()
    monkeypatch.setenv("TEST_USER_KEY", signer.private_key_hex)
    gateway.call(gateway.app.credit, UserRef(8453, signer.address), "dep", "1000")
    return signer


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def order_cli(gateway, *args: str) -> tuple[int, list[dict]]:  # noqa: ANN001
    out = io.StringIO()
    code = run(["order", *args, "--key", "env:TEST_USER_KEY", "--url", gateway.url, "--timeout", str(WAIT_S),
                "--server-address", gateway.server.signer.address], out=out)
    return code, lines(out)


def test_buy_no_wait_prints_the_ack_and_the_acceptance(gateway, user) -> None:
    code, printed = order_cli(gateway, "buy", "SY100", "100", "--id", "CLI-1", "--no-wait")
    assert code == 0
    assert [p["msg_type"] for p in printed] == ["ACK", "NewIndexOrder"]
    assert printed[1]["status"] == "new" and printed[1]["client_order_id"] == "CLI-1"
    order = gateway.call(lambda: gateway.app.book(UserRef(8453, user.address)).get("CLI-1"))
    assert order.collateral == Decimal("100")


def test_buy_follows_the_order_to_its_invoice(gateway, user) -> None:
    who = UserRef(8453, user.address)
    gateway.orders_seen.clear()
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(order_cli, gateway, "buy", "SY100", "100", "--id", "CLI-2")
        assert gateway.orders_seen.wait(WAIT_S)
        app = gateway.app
        gateway.call(app.engage, who, "CLI-2", "100")
        gateway.call(app.fill, who, "CLI-2", "0.002", "99.95")
        gateway.call(app.finish, who, "CLI-2", "1")
        line = InvoiceLine(symbol="BTC", quantity=Decimal("0.001"), average_price=Decimal("99900"),
                           value=Decimal("99.9"), fee=Decimal("0.05"), lot_ids=("L-9",))
        gateway.call(app.mint, who, "CLI-2", [line], "0x" + "cd" * 32)
        code, printed = running.result(WAIT_S)
    assert code == 0
    kinds = [(p["msg_type"], p.get("status")) for p in printed]
    assert kinds[:2] == [("ACK", None), ("NewIndexOrder", "new")]
    assert ("IndexOrderFill", "filled") in kinds and kinds[-1] == ("MintInvoice", None)
    assert printed[-1]["amount_returned"] == "0.05" and printed[-1]["mint_tx"] == "0x" + "cd" * 32


def test_refusals_exit_with_status_1(gateway, user) -> None:
    code, printed = order_cli(gateway, "buy", "SY999", "10", "--id", "CLI-3")
    assert code == 1 and printed[-1]["reason_code"] == "UNKNOWN_INDEX"
    code, printed = order_cli(gateway, "cancel", "NOPE", "--symbol", "SY100")
    assert code == 1 and printed[-1]["reason_code"] == "UNKNOWN_ORDER"
    code, printed = order_cli(gateway, "invoice", "NOPE")
    assert code == 1 and printed[-1]["msg_type"] == "MintInvoiceRejected"


def test_cancel_prints_what_was_cancelled(gateway, user) -> None:
    assert order_cli(gateway, "buy", "SY100", "50", "--id", "CLI-4", "--no-wait")[0] == 0
    code, printed = order_cli(gateway, "cancel", "CLI-4", "--symbol", "SY100", "--amount", "20")
    assert code == 0 and printed[-1]["cancelled_amount"] == "20" and printed[-1]["collateral_remaining"] == "30"


def test_sell_sends_side_2_with_its_minimum_and_is_refused_while_sells_are_not_served(gateway, user) -> None:
    who = UserRef(8453, user.address)
    gateway.call(gateway.app.books.credit_tokens,
                 [TokenDeposit(8453, "0x" + "0a" * 32, 0, 1, user.address, "SY100", Decimal("0.01"))])
    code, printed = order_cli(gateway, "sell", "SY100", "0.004", "--min-usdc", "150", "--id", "CLI-S1")
    assert code == 1 and printed[-1]["reason_code"] == "UNSUPPORTED_SIDE"
    gateway.app.accept_sells = True
    try:
        code, printed = order_cli(gateway, "sell", "SY100", "0.004", "--min-usdc", "150", "--id", "CLI-S2",
                                  "--no-wait")
        assert code == 0 and [(p["msg_type"], p.get("status")) for p in printed] == [("ACK", None),
                                                                                    ("NewIndexOrder", "new")]
        order = gateway.call(lambda: gateway.app.book(who).get("CLI-S2"))
        assert (order.side, order.collateral, order.min_proceeds) == (Side.SELL, Decimal("0.004"), Decimal("150"))
        code, printed = order_cli(gateway, "sell", "SY100", "0.007", "--id", "CLI-S3")
        assert code == 1 and printed[-1]["reason_code"] == "INSUFFICIENT_TOKENS"
    finally:
        gateway.app.accept_sells = False


def test_reports_not_signed_by_the_named_server_are_refused(gateway, user) -> None:
    out = io.StringIO()
    code = run(["buy", "SY100", "1", "--key", "env:TEST_USER_KEY", "--url", gateway.url, "--timeout", str(WAIT_S),
                "--server-address", Signer.generate().address], out=out)
    assert code == 1


def test_usage_and_connection_errors(gateway, monkeypatch) -> None:
    monkeypatch.delenv("INDEXMAKER_USER_KEY", raising=False)
    assert run(["order", "buy", "SY100", "10", "--url", gateway.url]) == 2  # no key at all
    assert run(["order", "buy", "SY100", "10", "--key", "0x1234", "--url", gateway.url]) == 2
    assert run(["order", "buy", "SY100", "10", "--key", "env:NOT_SET_ANYWHERE", "--url", gateway.url]) == 2
    assert run(["order", "short", "SY100", "10"]) == 2
    key = Signer.generate().private_key_hex
    assert run(["order", "buy", "SY100", "10", "--key", key, "--url", f"ws://127.0.0.1:{free_port()}/ws",
                "--timeout", "2"]) == 3
