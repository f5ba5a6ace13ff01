"""`indexmaker order ...`: send an order or a cancel over the gateway and print every report as it arrives.

    indexmaker order buy SY100 1000 --key env:MY_KEY [--url ws://HOST:8765/ws] [--id C-1] [--no-wait]
    indexmaker order sell SY100 0.01 [--min-usdc 400] --key env:MY_KEY [--id C-2] [--no-wait]
    indexmaker order cancel C-1 --symbol SY100 [--amount 250] --key file:~/.keys/me

`--url` defaults to $INDEXMAKER_GATEWAY_URL (`indexmaker order` fills in the running system's gateway).
`--key` takes `env:NAME`, `file:PATH` or the hex key (visible in the process list), else INDEXMAKER_USER_KEY.
Exit status: 0 done, 1 refused, 2 usage, 3 connection failure or timeout."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from protocol.client import GatewayClient, NakError, ProtocolViolation
from protocol.codec import Decoded, body_dict

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
KEY_ENV = "INDEXMAKER_USER_KEY"
URL_ENV = "INDEXMAKER_GATEWAY_URL"


class KeyUsageError(Exception):
    """A key that cannot be had from what the user gave (no variable, no file, nothing given)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indexmaker order", description="Send index orders over FIX/JSON.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--key", help="env:NAME, file:PATH or hex; default $" + KEY_ENV)
    common.add_argument("--url", default=os.environ.get(URL_ENV))
    common.add_argument("--chain-id", type=int, default=8453)
    common.add_argument("--server-address", help="check every report is signed by this address")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the final report")
    sub = parser.add_subparsers(dest="action", required=True)
    buy = sub.add_parser("buy", parents=[common], help="buy an index for an amount of collateral")
    buy.add_argument("symbol")
    buy.add_argument("amount", help="collateral to spend, a decimal string (USDC)")
    buy.add_argument("--id", dest="client_order_id", help="client order id (default: C-<ms>)")
    buy.add_argument("--no-wait", action="store_true", help="exit once the order is accepted")
    sell = sub.add_parser("sell", parents=[common], help="redeem index units credited for redemption "
                                                         "(indexmaker deposit-tokens) for USDC")
    sell.add_argument("symbol")
    sell.add_argument("amount", help="index units to sell, a decimal string")
    sell.add_argument("--min-usdc", dest="min_usdc", help="the least USDC to accept for them (default: no minimum)")
    sell.add_argument("--id", dest="client_order_id", help="client order id (default: C-<ms>)")
    sell.add_argument("--no-wait", action="store_true", help="exit once the order is accepted")
    cancel = sub.add_parser("cancel", parents=[common], help="cancel (part of) an order")
    cancel.add_argument("client_order_id")
    cancel.add_argument("--symbol", required=True)
    cancel.add_argument("--amount", help="collateral to cancel; default: all that is not spent")
    invoice = sub.add_parser("invoice", parents=[common], help="ask again for an order's mint invoice")
    invoice.add_argument("client_order_id")
    return parser


def load_key(spec: str | None) -> str:
    if spec is None:
        spec = os.environ.get(KEY_ENV)
        if not spec:
            raise KeyUsageError(f"no key: pass --key env:NAME|file:PATH|HEX or set {KEY_ENV}")
    if spec.startswith("env:"):
        value = os.environ.get(spec[4:])
        if not value:
            raise KeyUsageError(f"environment variable {spec[4:]} is not set")
        return value.strip()
    if spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise KeyUsageError(f"cannot read key file {path}: {exc.strerror}") from None
    return spec.strip()


def _line(d: Decoded) -> str:
    return json.dumps({"seq_num": d.seq_num, "msg_type": d.msg_type, **body_dict(d.body)}, sort_keys=False)


def _outcome(d: Decoded, action: str, client_order_id: str, no_wait: bool) -> int | None:
    """The exit status once `d` ends the command, else None."""
    body: Any = d.body
    if getattr(body, "client_order_id", None) != client_order_id:
        return None
    if action in ("buy", "sell"):
        if d.msg_type == "NewIndexOrder":
            return EXIT_REFUSED if body.status == "rejected" else (EXIT_OK if no_wait else None)
        if d.msg_type == "IndexOrderFill" and body.status in ("canceled", "rejected"):
            return EXIT_OK if body.status == "canceled" else EXIT_REFUSED
        if action == "buy" and d.msg_type == "MintInvoice":
            return EXIT_OK
        if action == "sell" and d.msg_type == "IndexOrderFill" and body.status == "filled":
            return EXIT_OK  # sold: the proceeds are the user's collateral
        return None
    if action == "cancel" and d.msg_type == "CancelIndexOrder":
        return EXIT_OK if body.status == "canceled" else EXIT_REFUSED
    if action == "invoice" and d.msg_type in ("MintInvoice", "MintInvoiceRejected"):
        return EXIT_OK if d.msg_type == "MintInvoice" else EXIT_REFUSED
    return None


async def _main(args: argparse.Namespace, out: Any) -> int:
    client = GatewayClient(args.url, load_key(args.key), args.chain_id, server_address=args.server_address,
                           reconnect=True, ack_timeout_s=min(args.timeout, 10.0))
    try:
        await client.connect()
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"cannot reach the gateway at {args.url}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except NakError as exc:
        print(f"logon refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        try:
            if args.action in ("buy", "sell"):
                client_order_id = args.client_order_id or f"C-{time.time_ns() // 1_000_000}"
                if args.action == "buy":
                    seq = await client.new_order(client_order_id, args.symbol, args.amount)
                else:
                    seq = await client.new_order(client_order_id, args.symbol, args.amount, "2", args.min_usdc)
            elif args.action == "cancel":
                client_order_id = args.client_order_id
                seq = await client.cancel_order(client_order_id, args.symbol, args.amount)
            else:
                client_order_id = args.client_order_id
                seq = await client.get_invoice(client_order_id)
        except NakError as exc:
            print(json.dumps({"msg_type": "NAK", **body_dict(exc.nak)}), file=out)
            return EXIT_REFUSED
        print(json.dumps({"msg_type": "ACK", "ref_seq_num": seq, "client_order_id": client_order_id}), file=out)
        deadline = asyncio.get_running_loop().time() + args.timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise asyncio.TimeoutError
            report = await client.next_report(left)
            print(_line(report), file=out, flush=True)
            status = _outcome(report, args.action, client_order_id, getattr(args, "no_wait", False))
            if status is not None:
                return status
    except asyncio.TimeoutError:
        print(f"no final report within {args.timeout} s", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ProtocolViolation as exc:
        print(f"refusing a report: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        await client.close()


def run(argv: Sequence[str], out: Any = None) -> int:
    """Entry point for `indexmaker order ...`; returns the exit status."""
    argv = list(argv)
    if argv and argv[0] == "order":
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors (and --help)
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    if not args.url:
        print(f"no gateway URL: pass --url ws://HOST:PORT/ws or set {URL_ENV}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_main(args, out or sys.stdout))
    except KeyUsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # a malformed key or field
        print(f"invalid input: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
