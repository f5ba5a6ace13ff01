"""The paper exchange (exchange/simulator/paper.py) in a process of its own, in front of an upstream exchange whose
market data it mirrors: in the local world the simulator, playing the live exchange. It credits the USDC transfers
it sees to the paper deposit address on the watched chain (the router's deposits), on top of `[paper] balances`.

    python -m world.paper_exchange '<json of LocalExchangeConfig + the chain + "upstream" + "paper">'

prints one JSON line once every book is mirrored and it listens. With `state_file` the paper account (balances,
orders, trades, deposits) is kept there and resumed, on the same port; the mirrored books are the upstream's again."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from chain.deployment import WorldState
from world.local_exchange import LocalExchange, LocalExchangeConfig, deposit_chain, serve_kept
from world.ports import port_is_free


class PaperExchangeProcess(LocalExchange):
    """Start the paper exchange before `upstream` (its REST and stream URLs), watching `chain` of the world; the
    account is the house's (the operator's keys, else the simulator's test keys), as the system signs with them.
    `paper`: core.config.PaperConfig's fields (JSON); `book_depth`: levels mirrored per side."""

    def __init__(self, state: WorldState, config: LocalExchangeConfig, *, upstream_rest_url: str,
                 upstream_ws_url: str, paper: dict[str, Any], book_depth: int, chain: str = "base") -> None:
        super().__init__(state, config, chain=chain)
        self.upstream = {"rest_url": upstream_rest_url, "ws_url": upstream_ws_url, "book_depth": book_depth}
        self.paper = paper

    def start(self) -> "PaperExchangeProcess":
        self._start_child("world.paper_exchange", "the paper exchange",
                          {"upstream": self.upstream, "paper": self.paper})
        return self


async def _serve(options: dict[str, Any]) -> None:
    import core  # noqa: F401  (decimal context)
    from actors.exchange_deposits import ExchangeKeys
    from exchange.simulator.config import AccountSpec
    from exchange.simulator.paper import PAPER, PaperExchange, PaperOptions, paper_deposit_addresses
    from exchange.simulator.persistence import deposit_cursor, load

    c, up, p = options["config"], options["upstream"], options["paper"]
    path = Path(c["state_file"]) if c.get("state_file") else None
    saved = load(path) if path is not None else None
    from_block = options["from_block"]
    port = p["port"]
    if saved is not None:  # blocks already read need not be read again; the same port as before if free
        from_block = max(from_block, deposit_cursor(saved, c["network"]) or 0)
        if port == 0 and saved.get("port") and port_is_free(int(saved["port"])):
            port = int(saved["port"])
    keys = ExchangeKeys.from_env()  # through the environment the child inherits: never on its command line
    account = AccountSpec(keys.api_key, keys.secret, {a: Decimal(v) for a, v in p["balances"].items()},
                          paper_deposit_addresses(keys.api_key, p["deposit_address"] or None))
    paper = PaperExchange(PaperOptions(
        up["rest_url"], up["ws_url"], tuple(c["symbols"]), account, p["host"], port=port, book_depth=up["book_depth"],
        avg_price_poll_ms=p["avg_price_poll_ms"], depth_interval_ms=p["depth_interval_ms"],
        deposit_chains=(deposit_chain(options, from_block),)), state=saved)
    await paper.start(p["ready_timeout_s"])
    assert paper.sim is not None
    await serve_kept(paper.sim, path, c["snapshot_ms"],
                     {"url": paper.url, "ws_url": paper.ws_url, "pid": os.getpid(), "mode": PAPER,
                      "upstream": up["rest_url"], "resumed": saved is not None}, paper.stop)


if __name__ == "__main__":
    asyncio.run(_serve(json.loads(sys.argv[1])))
