"""The HTTP invoice service against a running index-order shard holding a minted order's invoice, through a real
aiohttp client: signed requests see their own invoices, and every other request gets a clear 4xx (or 503)."""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest

ray = pytest.importorskip("ray")

from aiohttp import ClientSession, web  # noqa: E402
from yarl import URL  # noqa: E402

from actors.order_books import IndexOrderBooks, OrderBooksOptions  # noqa: E402
from core.batch_planner import Engagement  # noqa: E402
from core.batch_result import BatchOrderResult  # noqa: E402
from core.chain_events import CollateralDeposit  # noqa: E402
from core.lot_assignment import AssetLine, AssignedFill  # noqa: E402
from core.side import Side  # noqa: E402
from protocol.envelope import UserRef  # noqa: E402
from protocol.http_auth import HEADER_SIGNATURE, sign_request  # noqa: E402
from protocol.indexmaker_app import NewOrder  # noqa: E402
from protocol.invoice_http import InvoiceHttp  # noqa: E402
from protocol.signature import Signer  # noqa: E402

INDEX = "SY100.dev"
UNIT = Decimal("1e-18")
ALICE = Signer("0x" + "a1" * 32)
BOB = Signer("0x" + "b2" * 32)


@pytest.fixture(scope="module")
def shard_with_invoice(ray_cluster, redis_server):  # noqa: ARG001
    """One shard: Alice's order `a1` filled, closed and minted (its invoice stored); Bob's `b1` accepted, unminted."""
    tag = uuid.uuid4().hex[:8]
    shard = IndexOrderBooks.options(name=f"inv-{tag}").remote(
        0, OrderBooksOptions(redis_server.url, 1, (INDEX,), key_prefix=f"inv-{tag}"))
    try:
        ray.get(shard.credit.remote([CollateralDeposit(42161, "0x01", 0, 1, ALICE.address, Decimal("100")),
                                     CollateralDeposit(42161, "0x01", 1, 1, BOB.address, Decimal("100"))]))
        ua, ub = UserRef(42161, ALICE.address), UserRef(42161, BOB.address)
        ray.get(shard.handle.remote([NewOrder(ua, "a1", INDEX, Side.BUY, Decimal("60")),
                                     NewOrder(ub, "b1", INDEX, Side.BUY, Decimal("50"))]))
        oa = f"{ALICE.address.lower()}:a1"
        ray.get(shard.engage.remote("b1", [Engagement(oa, INDEX, Decimal("0.0012"), Decimal("60"),
                                                      Decimal("49000"))]))
        ray.get(shard.apply_fills.remote("b1:1", [AssignedFill(oa, INDEX, int(Decimal("0.0012") / UNIT), UNIT,
                                                            int(Decimal("59.9").scaleb(24)),
                                                            int(Decimal("0.08").scaleb(24)))]))
        line = AssetLine("BTCUSDC", 100, Decimal("0.000001"), Decimal("59.9"), Decimal("0.08"), ("BTCUSDC:1",))
        mints = ray.get(shard.complete_batch.remote("b1", [BatchOrderResult(oa, Decimal("0.0012"), (line,))]))
        assert [m.order_id for m in mints] == [oa]
        invoice = ray.get(shard.minted.remote(oa, "0x" + "cd" * 32))
        yield shard, invoice.model_dump(mode="json")
    finally:
        ray.kill(shard, no_restart=True)


@pytest.fixture
async def service(shard_with_invoice):
    """The invoice routes on a real aiohttp server (port 0) whose lookup is the shard's `user(address)`."""
    shard, _ = shard_with_invoice
    failing = {"on": False}

    async def lookup(address: str):  # noqa: ANN202
        if failing["on"]:
            raise ray.exceptions.RayActorError()
        return await shard.user.remote(address)

    invoices = InvoiceHttp(lookup)
    app = web.Application()
    app.add_routes(invoices.routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with ClientSession() as http:
        yield http, base, invoices, failing
    await runner.cleanup()


async def get(http: ClientSession, base: str, target: str, signer: Signer | None = None,
              headers: dict | None = None) -> tuple[int, dict, dict]:
    """GET `target` exactly as signed (encoded=True: the client must not re-encode what the signature covers)."""
    h = dict(headers if headers is not None else sign_request(signer, "GET", target, int(time.time() * 1000)))
    async with http.get(URL(base + target, encoded=True), headers=h) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_a_user_reads_its_invoice_by_id_by_order_and_in_its_list(service, shard_with_invoice) -> None:
    http, base, invoices, _ = service
    _, stored = shard_with_invoice
    assert stored["invoice_id"] == f"inv:{ALICE.address.lower()}:a1"
    status, body, _ = await get(http, base, f"/invoices/{stored['invoice_id']}", ALICE)
    assert (status, body) == (200, stored)
    assert Decimal(body["spent"]) == Decimal("59.98") and body["mint_tx"] == "0x" + "cd" * 32
    status, body, _ = await get(http, base, "/invoices/a1", ALICE)
    assert (status, body) == (200, stored)
    status, body, _ = await get(http, base, f"/invoices?user={ALICE.address}", ALICE)
    assert (status, body) == (200, {"user": ALICE.address, "invoices": [stored]})
    status, body, _ = await get(http, base, "/invoices", ALICE)  # user= defaults to the signer
    assert (status, body["invoices"]) == (200, [stored])
    status, body, _ = await get(http, base, "/invoices", BOB)
    assert (status, body) == (200, {"user": BOB.address, "invoices": []})
    assert invoices.stats["200"] == 5


async def test_another_users_invoices_are_forbidden(service, shard_with_invoice) -> None:
    http, base, _, _ = service
    _, stored = shard_with_invoice
    status, body, _ = await get(http, base, f"/invoices/{stored['invoice_id']}", BOB)
    assert (status, body["error"]) == (403, "FORBIDDEN")
    status, body, _ = await get(http, base, f"/invoices?user={ALICE.address}", BOB)
    assert (status, body["error"]) == (403, "FORBIDDEN")
    # the same answer whether or not the other user has such an invoice: a 403 reveals nothing
    status, body, _ = await get(http, base, f"/invoices/inv:{ALICE.address.lower()}:zz", BOB)
    assert (status, body["error"]) == (403, "FORBIDDEN")


async def test_unsigned_forged_or_stale_requests_are_401(service, shard_with_invoice) -> None:
    http, base, _, _ = service
    _, stored = shard_with_invoice
    target = f"/invoices/{stored['invoice_id']}"
    status, body, headers = await get(http, base, target, headers={})
    assert (status, body["error"]) == (401, "MISSING_AUTH")
    assert headers["WWW-Authenticate"].startswith("IndexMaker-EIP191")
    signed_elsewhere = sign_request(ALICE, "GET", "/invoices/a1", int(time.time() * 1000))
    status, body, _ = await get(http, base, target, headers=signed_elsewhere)
    assert (status, body["error"]) == (401, "BAD_SIGNATURE")
    old = sign_request(ALICE, "GET", target, int(time.time() * 1000) - 120_000)
    status, body, _ = await get(http, base, target, headers=old)
    assert (status, body["error"]) == (401, "STALE_TIMESTAMP")
    forged = {**sign_request(ALICE, "GET", target, int(time.time() * 1000))}
    forged[HEADER_SIGNATURE] = sign_request(BOB, "GET", target, int(time.time() * 1000))[HEADER_SIGNATURE]
    status, body, _ = await get(http, base, target, headers=forged)
    assert (status, body["error"]) == (401, "BAD_SIGNATURE")


async def test_missing_invoices_bad_ids_and_a_silent_store(service) -> None:
    http, base, invoices, failing = service
    status, body, _ = await get(http, base, "/invoices/b1", BOB)
    assert (status, body["error"]) == (404, "NOT_MINTED")
    status, body, _ = await get(http, base, "/invoices/nope", ALICE)
    assert (status, body["error"]) == (404, "UNKNOWN_INVOICE")
    status, body, _ = await get(http, base, "/invoices/inv:alice:a1", ALICE)
    assert (status, body["error"]) == (400, "BAD_INVOICE_ID")
    status, body, _ = await get(http, base, "/invoices?user=alice", ALICE)
    assert (status, body["error"]) == (400, "BAD_USER")
    failing["on"] = True
    status, body, _ = await get(http, base, "/invoices/a1", ALICE)
    assert (status, body["error"]) == (503, "UNAVAILABLE")
    assert invoices.stats == {"404": 2, "400": 2, "503": 1}


async def test_a_user_reads_its_own_balance_by_parts_and_only_its_own(service) -> None:
    """GET /balance: the signer's ledger parts (the identity holds on the wire) and its deposits; unsigned is 401;
    an unknown user sees zeros, never someone else's ledger."""
    http, base, _, failing = service
    status, body, _ = await get(http, base, "/balance", ALICE)
    assert status == 200 and body["user"].lower() == ALICE.address.lower()
    parts = {k: Decimal(v) for k, v in body["parts"].items()}
    assert parts["credited"] == Decimal("100") and parts["spent"] == Decimal("59.98")
    assert parts["credited"] + parts["debt"] == (parts["available"] + parts["held"] + parts["reserved"]
                                                 + parts["spent"] + parts["fees_charged"])
    assert body["deposits"] == {f"42161:0x01:0": {"amount": "100", "held": "0", "reversed": False}}
    status, body, _ = await get(http, base, "/balance", Signer("0x" + "c3" * 32))
    assert status == 200 and set(body["parts"].values()) == {"0"} and body["deposits"] == {}
    status, _, headers = await get(http, base, "/balance", headers={})
    assert status == 401 and "WWW-Authenticate" in headers
    failing["on"] = True
    status, body, _ = await get(http, base, "/balance", ALICE)
    assert (status, body["error"]) == (503, "UNAVAILABLE")
    failing["on"] = False
