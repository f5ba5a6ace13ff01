"""`indexmaker config check FILE`: every problem of a configuration file, one line per field, in words.

Pydantic's report is written for programmers; an operator wants `solver.fee_factor: write money as a string
("1.002"), not 1.002`, and the TOML line when it does not parse. Cross-field rules name their fields; placement and
the environment's name are checked; the secrets an environment needs are listed with their source, never their
values (missing is a note)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("local", "testnet", "live")


@dataclass
class CheckResult:
    file: str
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "settings together"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(error: dict[str, Any]) -> str:
    """One pydantic error as `where: what (got value)`."""
    where = _loc(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        hint = " (secrets never go in a config file: see INDEXMAKER_SECRETS_FILE)" if any(
            w in where.lower() for w in ("key", "secret", "mnemonic", "password", "token")) else ""
        return f"{where}: unknown setting{hint}"
    if kind == "missing":
        return f"{where}: required"
    value = error.get("input")
    shown = "input" in error and kind != "value_error" and not isinstance(value, (dict, list))
    got = f" (got {_shown(value)})" if shown else ""
    return f"{where}: {msg}{got}"


def check(path: str | None) -> CheckResult:
    import core  # noqa: F401  (decimal context)
    from pydantic import ValidationError

    from core.config import Settings
    from world.secrets import SecretsError, report

    result = CheckResult(path or "(defaults)")
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            result.errors.append(f"{path}: no such file")
            return result
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            result.errors.append(f"{path}: not valid TOML: {exc}")
            return result
    # The checks the model does not make, on the file as written (so they show with the model's own errors) ...
    result.errors.extend(_beyond_the_model(raw.get("environment"), (raw.get("ray") or {}).get("placement")))
    try:
        settings = Settings.load(path)
    except ValidationError as exc:
        result.errors.extend(explain(e) for e in exc.errors())
        return result
    except ValueError as exc:
        result.errors.append(str(exc))
        return result
    result.settings = settings
    # ... and on the result, environment variables included.
    for problem in _beyond_the_model(settings.environment, settings.ray.placement):
        if problem not in result.errors:
            result.errors.append(problem)
    result.errors.extend(_basket_problems(settings, result.notes))
    result.errors.extend(_deployment_problems(settings, result.notes))
    result.errors.extend(_paper_problems(settings, result.notes))
    try:
        secrets = report(settings.environment, settings.exchange.mode == "paper")
        for name, source in secrets.source.items():
            result.notes.append(f"secret {name}: {source}")
        if secrets.missing:
            result.notes.append(f"{len(secrets.missing)} secret(s) missing: needed to run {settings.environment}, "
                                f"not to check the file")
    except SecretsError as exc:
        result.errors.append(str(exc))
    return result


def _basket_problems(settings: Any, notes: list[str]) -> list[str]:
    """Each index's basket against the exchangeInfo it will trade on. The local world's is the simulator's (built
    here from the same files, nothing started); an external exchange is asked by `up`, not by a file check."""
    from core.basket import load_basket_file
    from core.basket_check import basket_problems

    problems, baskets = [], {}
    for index, entry in settings.indexes.items():
        path = settings.data_dir / "indexes" / entry.basket
        try:
            baskets[index] = load_basket_file(index, path)
        except (OSError, ValueError) as exc:
            problems.append(f"indexes.{index}: basket {path} cannot be read: {exc}")
    pairs = sorted({a.symbol for b in baskets.values() for a in b.assets})
    if settings.environment != "local":
        notes.append(f"indexes: {len(settings.indexes)} indexes, {len(pairs)} pairs; checked against the exchange "
                     f"when the system starts, not by a file check")
        return problems
    from exchange.simulator.config import SimulatorConfig
    from world.ports import LOOPBACK
    from exchange.simulator.markets import load_markets

    sim = SimulatorConfig(host=LOOPBACK)
    try:
        markets = load_markets(sim.exchange_info_path, sim.indexes_dir, sim.deployment_path, pairs)
    except ValueError as exc:  # a pair the simulator cannot list (no entry, no twin, no price)
        return problems + [f"indexes: the local exchange cannot list every pair: {exc}"]
    for basket in baskets.values():
        problems.extend(basket_problems(basket, {s: m.filters for s, m in markets.items()}))
    notes.append(f"indexes: {len(settings.indexes)} indexes, {len(pairs)} pairs checked against the local "
                 f"exchange's exchangeInfo")
    return problems


def _deployment_problems(settings: Any, notes: list[str]) -> list[str]:
    """An external world names its contracts in a deployment file that agrees with the configuration; its index
    tokens are the operator's to deploy (noted while one is missing, as `up` will refuse to start without it)."""
    from chain.deployment_file import deployment_problems, load_deployment
    from chain.external_world import deployment_path
    from core.config import DEPLOY, REPO_ROOT

    if settings.environment == "local":
        return []
    path = deployment_path(settings, REPO_ROOT / "config")
    if path is None:
        return [f"chain.deployment_file: the {settings.environment} world names its contracts in a deployment file "
                f"(config/deployments/{settings.environment}.toml)"]
    try:
        deployment = load_deployment(path)
    except ValueError as exc:
        return str(exc).splitlines()
    notes.append(f"deployment {path}: USDC and SpokePools on chains {', '.join(sorted(deployment.chains))}")
    for index, entry in settings.indexes.items():
        if entry.token == DEPLOY or "base" not in entry.token:
            notes.append(f"indexes.{index}: no token address on base yet (the operator deploys it)")
    return deployment_problems(deployment, settings) + _external_problems(settings)


def _external_problems(settings: Any) -> list[str]:
    """What an external world must name that the local world fills in itself: the chains' RPCs, the WebSocket API
    apart from the market streams (Binance serves them on two hosts), well-formed token addresses."""
    from chain.deployment_file import checked_address
    from chain.external_world import index_tokens

    problems = [f"chain.{name}: required outside the local world (the chain's RPC URL)"
                for name in ("arbitrum_rpc", "base_rpc") if not getattr(settings.chain, name)]
    x = settings.exchange
    if x.ws_url and not x.ws_api_url:
        problems.append("exchange.ws_api_url: required with ws_url outside the local world (Binance serves the "
                        "WebSocket API on its own host: wss://ws-api.binance.com:443/ws-api/v3)")
    try:
        index_tokens(settings)
    except ValueError as exc:
        problems.append(str(exc))
    if x.deposit_address is not None:
        try:
            checked_address(x.deposit_address)
        except ValueError as exc:
            problems.append(f"exchange.deposit_address: {exc} (the route pays it on {x.deposit_network})")
    return problems


def _paper_problems(settings: Any, notes: list[str]) -> list[str]:
    """Paper mode trades nothing, but the router still moves real USDC on a real chain: to an address someone
    holds, never to one derived from a key."""
    if settings.exchange.mode != "paper":
        return []
    paper = settings.paper
    source = settings.exchange.rest_url or "the local world's simulator"
    notes.append(f"exchange.mode paper: market data from {source}, orders matched by the paper "
                 f"exchange, nothing sent; starting balances "
                 f"{', '.join(f'{a} {v}' for a, v in sorted(paper.balances.items())) or 'none'}")
    problems = [f"paper.balances.{asset}: must not be negative (got {value})"
                for asset, value in sorted(paper.balances.items()) if value < 0]
    if dict(settings.reserves.opening) != dict(paper.balances):
        problems.append(f"paper.balances: the reserves check counts from reserves.opening "
                        f"({dict(sorted(settings.reserves.opening.items()))}): make the two equal")
    if settings.environment != "local" and not paper.deposit_address:
        problems.append("paper.deposit_address: on a real chain the router sends real USDC to the paper deposit "
                        "address: name an address you control")
    return problems


def _beyond_the_model(environment: Any, placement: Any) -> list[str]:
    from world.placement import check_placement

    problems = []
    if environment is not None and environment not in ENVIRONMENTS:
        problems.append(f"environment: must be one of {', '.join(ENVIRONMENTS)} (got {environment!r})")
    if isinstance(placement, dict) and all(isinstance(v, dict) for v in placement.values()):
        try:
            problems.extend(check_placement(placement))
        except TypeError:  # amounts of the wrong type: the model's own error says so
            pass
    return problems
