"""The `indexmaker` command: `config check|show [FILE]`, `order buy|cancel|invoice ...` (a FIX/JSON user client),
`demo` (the whole flow on the local world), `up`/`status`/`down` (M7)."""
from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError


def _config(args: argparse.Namespace) -> int:
    import core  # noqa: F401
    from core.config import Settings

    try:
        settings = Settings.load(args.file)
    except (ValidationError, ValueError, FileNotFoundError) as e:
        print(f"config {args.file or '(defaults)'} is not valid:\n{e}", file=sys.stderr)
        return 1
    if args.action == "show":
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
    else:
        print(f"config {args.file or '(defaults)'}: ok ({settings.environment})")
    return 0


def _not_yet(what: str, issue: str) -> int:
    print(f"`indexmaker {what}` is not built yet: it arrives with issue {issue}.", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indexmaker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config", help="check or show a configuration file")
    cfg.add_argument("action", choices=["check", "show"])
    cfg.add_argument("file", nargs="?")
    demo = sub.add_parser("demo", help="the whole flow on the local world: three users, deposits, orders, mints")
    demo.add_argument("--port", type=int, default=None, help="gateway port (default: the configured one)")
    order = sub.add_parser("order", help="send, cancel or fetch index orders over FIX/JSON (see --help)",
                           add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "order":  # everything after `order` belongs to the protocol client's own parser
        from protocol.cli import run

        return run(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "config":
        return _config(args)
    if args.command == "demo":
        from world.demo import main as demo_main

        return demo_main(args.port)
    return 2


if __name__ == "__main__":
    sys.exit(main())
