"""`indexmaker market ...` on the local world: switch the simulator's market regime, or replay a recorded depth
stream into a pair's book, through the simulator's /_admin endpoints. Only the local world's exchange has them: a
real exchange is never sent these."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from exchange.simulator.replay import load_depth_events


class MarketControlError(RuntimeError):
    """Why the market could not be changed, said plainly."""


def simulator_url(run: dict[str, Any]) -> str:
    """The local world's simulator (in paper mode, the one the paper exchange mirrors), from the run file; refused
    for any other environment."""
    if run.get("environment") != "local":
        raise MarketControlError(f"the running system's exchange is {run.get('environment')!r}, not the local "
                                 "world's simulator: market regimes exist only there")
    # Paper mode: the simulator plays the live exchange behind the paper one, and its market is the one to change.
    url = run.get("upstream_url") or run.get("exchange_url")
    if not url:
        raise MarketControlError("the run file names no exchange URL: restart the system with this version")
    return str(url)


def post(url: str, path: str, body: dict[str, Any] | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        try:
            detail = json.loads(detail).get("error", detail)
        except (ValueError, AttributeError):
            pass
        raise MarketControlError(f"the simulator refused: {detail}") from None
    except urllib.error.URLError as exc:
        raise MarketControlError(f"the simulator at {url} does not answer: {exc.reason}") from None


def set_regime(url: str, name: str | None, symbols: list[str] | None = None, percent: str | None = None,
               drift_bps_per_min: str | None = None) -> dict[str, Any]:
    """Switch (or, with no name, read) the regime; returns the regimes in force."""
    if name is None:
        return post(url, "/_admin/regime")
    body: dict[str, Any] = {"name": name}
    if symbols:
        body["symbols"] = symbols
    if percent is not None:
        body["percent"] = percent
    if drift_bps_per_min is not None:
        body["drift_bps_per_min"] = drift_bps_per_min
    return post(url, "/_admin/regime", body)


def replay(url: str, symbol: str, capture: Path, rebase: bool) -> dict[str, Any]:
    try:
        events = load_depth_events(capture)
    except (OSError, ValueError) as exc:
        raise MarketControlError(f"cannot read the capture {capture}: {exc}") from None
    return post(url, "/_admin/replay", {"symbol": symbol, "events": events, "rebase": rebase})


def regime_lines(state: dict[str, Any]) -> list[str]:
    lines = [f"{name}: {', '.join(symbols) if len(symbols) <= 6 else f'{len(symbols)} pairs'}"
             for name, symbols in sorted(state.get("regimes", {}).items())]
    if state.get("halted"):
        lines.append("halted (BREAK): " + ", ".join(state["halted"]))
    if state.get("replaying"):
        lines.append("replaying a recording: " + ", ".join(state["replaying"]))
    return lines
