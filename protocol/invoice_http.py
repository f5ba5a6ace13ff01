"""The user's documents over HTTP (`GET /invoices/{id}`, `GET /invoices?user=ADDR`, `GET /balance`), signed like the
frames: an invoice is fetched long after the session that reported it, and a signed GET needs no session.

Unauthenticated is 401; another user's invoice is 403, decided before any lookup so it reveals nothing; a missing
one is 404 (`NOT_MINTED` or `UNKNOWN_INVOICE`); a silent store is 503. `{id}` is an invoice id or a client order id."""
from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from core.clock import Clock, SystemClock
from protocol.http_auth import HEADER_ADDRESS, HEADER_SIGNATURE, HEADER_TIMESTAMP, HttpAuthError, verify_request

log = logging.getLogger(__name__)

UserLookup = Callable[[str], Awaitable[Mapping[str, Any] | None]]

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}\Z")
_WWW_AUTHENTICATE = (f'IndexMaker-EIP191 headers="{HEADER_ADDRESS} {HEADER_TIMESTAMP} {HEADER_SIGNATURE}", '
                     'payload="canonical JSON of address, kind=http_request, method, target, timestamp"')


def error(status: int, code: str, reason: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "reason": reason}, status=status, headers=headers)


class InvoiceHttp:
    """The two routes, over a user lookup; `stats` counts answers by status (plain data for inspect())."""

    def __init__(self, lookup: UserLookup, *, clock: Clock | None = None, max_skew_ms: int = 60_000,
                 trading_mode: str | None = None) -> None:
        """`trading_mode` "paper": every invoice served says so, as the reports do."""
        self.lookup = lookup
        self.trading_mode = trading_mode
        self.clock = clock or SystemClock()
        self.max_skew_ms = max_skew_ms
        self.stats: dict[str, int] = {}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/invoices", self.list_invoices), web.get("/invoices/{invoice_id}", self.get_invoice),
                web.get("/balance", self.get_balance)]

    def _answer(self, response: web.Response) -> web.Response:
        key = str(response.status)
        self.stats[key] = self.stats.get(key, 0) + 1
        return response

    def _signer(self, request: web.Request) -> str:
        """The authenticated address (as signed), or an HttpAuthError."""
        return verify_request(request.method, request.raw_path, request.headers, self.clock.now_ms(),
                              self.max_skew_ms)

    async def list_invoices(self, request: web.Request) -> web.Response:
        try:
            signer = self._signer(request)
        except HttpAuthError as exc:
            return self._answer(error(exc.status, exc.code, exc.text, {"WWW-Authenticate": _WWW_AUTHENTICATE}))
        user = request.query.get("user", signer)
        if not _ADDRESS_RE.match(user):
            return self._answer(error(400, "BAD_USER", f"user must be a 0x-prefixed 20-byte hex address, got "
                                                       f"{user[:44]!r}"))
        if user.lower() != signer.lower():
            return self._answer(error(403, "FORBIDDEN", "a user may list only its own invoices (user= must be the "
                                                        "signing address)"))
        try:
            view = await self.lookup(signer)
        except Exception as exc:  # noqa: BLE001  (a shard restarting: the client may retry)
            log.warning("invoice lookup for %s failed: %s", signer, exc, extra={"user": signer.lower()})
            return self._answer(error(503, "UNAVAILABLE", "the invoice store does not answer; retry later"))
        invoices = [self._stamped(inv) for inv in (view or {}).get("invoices", {}).values()]
        invoices.sort(key=lambda inv: (inv.get("minted_ms") or 0, inv.get("invoice_id", "")))
        return self._answer(web.json_response({"user": signer, "invoices": invoices}))

    async def get_invoice(self, request: web.Request) -> web.Response:
        try:
            signer = self._signer(request)
        except HttpAuthError as exc:
            return self._answer(error(exc.status, exc.code, exc.text, {"WWW-Authenticate": _WWW_AUTHENTICATE}))
        wanted = request.match_info["invoice_id"]
        if wanted.startswith("inv:"):
            owner, _, cl_ord_id = wanted[4:].partition(":")
            if not _ADDRESS_RE.match(owner) or not cl_ord_id:
                return self._answer(error(400, "BAD_INVOICE_ID", "an invoice id is inv:<address>:<client order id> "
                                                                 "(or give the client order id alone)"))
        else:
            owner, cl_ord_id = signer, wanted
        if owner.lower() != signer.lower():
            return self._answer(error(403, "FORBIDDEN", "this invoice belongs to another user"))
        try:
            view = await self.lookup(signer)
        except Exception as exc:  # noqa: BLE001
            log.warning("invoice lookup for %s failed: %s", signer, exc, extra={"user": signer.lower()})
            return self._answer(error(503, "UNAVAILABLE", "the invoice store does not answer; retry later"))
        invoice = (view or {}).get("invoices", {}).get(cl_ord_id)
        if invoice is not None:
            return self._answer(web.json_response(self._stamped(invoice)))
        if any(o.get("cl_ord_id") == cl_ord_id for o in (view or {}).get("orders", ())):
            return self._answer(error(404, "NOT_MINTED", f"order {cl_ord_id!r} has no invoice yet: it is not "
                                                         "minted"))
        return self._answer(error(404, "UNKNOWN_INVOICE", f"no invoice {wanted!r} for this user"))

    def _stamped(self, invoice: Mapping[str, Any]) -> Mapping[str, Any]:
        return invoice if self.trading_mode is None else {**invoice, "trading_mode": self.trading_mode}

    async def get_balance(self, request: web.Request) -> web.Response:
        """The signer's own ledger (no `user=`: a balance is nobody else's business)."""
        try:
            signer = self._signer(request)
        except HttpAuthError as exc:
            return self._answer(error(exc.status, exc.code, exc.text, {"WWW-Authenticate": _WWW_AUTHENTICATE}))
        try:
            view = await self.lookup(signer)
        except Exception as exc:  # noqa: BLE001  (a shard restarting: the client may retry)
            log.warning("balance lookup for %s failed: %s", signer, exc, extra={"user": signer.lower()})
            return self._answer(error(503, "UNAVAILABLE", "the ledger store does not answer; retry later"))
        view = view or {}
        return self._answer(web.json_response({"user": signer, **balance_view(view.get("ledger")),
                                               **token_view(view.get("tokens"))}))


#: The ledger's parts, in the order of its identity: credited + debt = available + held + reserved + spent + fees
#: + withdrawn.
LEDGER_PARTS = ("credited", "debt", "available", "held", "reserved", "spent", "fees_charged", "withdrawn")


def balance_view(ledger: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored ledger (core.collateral_ledger's to_dict) as the user sees it: the parts, and per deposit its
    amount, the hold still kept for its route and whether a reorg reversed it. No ledger yet: all zero."""
    ledger = ledger or {}
    holds, reversed_ = ledger.get("holds", {}), ledger.get("reversed", {})
    deposits = {key: {"amount": amount, "held": holds.get(key, "0"), "reversed": key in reversed_}
                for key, amount in ledger.get("deposits", {}).items()}
    return {"parts": {name: ledger.get(name, "0") for name in LEDGER_PARTS}, "deposits": deposits,
            "fees": dict(ledger.get("fees", {}))}


def token_view(tokens: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored token ledger (core.token_ledger's to_dict) as the user sees it: per index the tokens credited for
    redemption by parts (credited + debt = available + reserved + redeemed + reversed), and per token deposit its
    index, units and whether a reorg reversed it. None yet: empty."""
    tokens = tokens or {}
    reversals = tokens.get("reversals", {})
    deposits = {key: {"index": index, "units": units, "reversed": key in reversals}
                for key, (index, units) in tokens.get("deposits", {}).items()}
    return {"tokens_credited": dict(tokens.get("indexes", {})), "token_deposits": deposits}
