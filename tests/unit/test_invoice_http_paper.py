"""The HTTP invoice service in paper mode: every invoice it serves says "paper", as the reports do; a live
service's invoices are served as stored."""
from __future__ import annotations

import time

from aiohttp import ClientSession, web
from yarl import URL

from protocol.http_auth import sign_request
from protocol.invoice_http import InvoiceHttp
from protocol.signature import Signer

ALICE = Signer("0x" + "a1" * 32)
STORED = {"invoice_id": "inv:x:a1", "cl_ord_id": "a1", "spent": "59.98", "minted_ms": 1}


async def served(trading_mode: str | None) -> list[dict]:
    async def lookup(address: str) -> dict:
        return {"invoices": {"a1": dict(STORED)}, "orders": [{"cl_ord_id": "a1"}]}

    app = web.Application()
    app.add_routes(InvoiceHttp(lookup, trading_mode=trading_mode).routes())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    out = []
    try:
        async with ClientSession() as http:
            for target in ("/invoices/a1", "/invoices"):
                headers = sign_request(ALICE, "GET", target, int(time.time() * 1000))
                async with http.get(URL(base + target, encoded=True), headers=headers) as resp:
                    assert resp.status == 200
                    out.append(await resp.json())
    finally:
        await runner.cleanup()
    return out


async def test_paper_invoices_say_paper_and_live_ones_are_as_stored() -> None:
    one, listed = await served("paper")
    assert one == {**STORED, "trading_mode": "paper"} and listed["invoices"] == [one]
    one, listed = await served(None)
    assert one == STORED and listed["invoices"] == [STORED]
