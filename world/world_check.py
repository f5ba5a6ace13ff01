"""The world checks `indexmaker up` runs before it starts anything (and `up --check-only` alone): does the world the
configuration names answer as the system needs it? One line per problem, each naming the part and the address.

Each check is a small coroutine returning its problems; they run together, each request bounded by
`[world_check] timeout_s`, so a world that is wholly unreachable is named part by part within seconds. A part that
does not answer is one line: what depends on it (its contracts, the key's permissions) is not asked."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from chain.deployment import WorldState


@dataclass(frozen=True)
class ExchangeAccess:
    """The key and secret the checks (and the system) use; None where the secrets do not give them."""

    api_key: str | None
    secret: str | None


def _short(exc: BaseException) -> str:
    """An exception as a few words on one line (the cause of a part's problem, never a traceback): its own message
    and, where it wraps another (ccxt's network errors do), the innermost one's."""
    inner = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    words = [str(exc)] + ([str(inner)] if inner is not exc and str(inner) not in str(exc) else [])
    text = " ".join(" ".join(words).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def masked(url: str) -> str:
    """`url` without its password (a store URL may carry one)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _bounded(what: str, coro: Awaitable[Any], timeout_s: float) -> Any:
    """`coro`'s result; TimeoutError saying `what` did not answer within the timeout."""
    try:
        return await asyncio.wait_for(coro, timeout_s)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{what}: no answer within {timeout_s:g} s") from None


# ---------------------------------------------------------------------------------------------------- secrets
def secrets_problems(environment: str, paper: bool = False) -> list[str]:
    """Each secret the environment needs and does not have (the custody keys are the mnemonic's; paper mode needs
    no exchange key)."""
    from world.secrets import SECRET_NAMES, SecretsError, report

    try:
        missing = report(environment, paper).missing
    except SecretsError as exc:
        return [str(exc)]
    return [f"secret {name}: missing ({SECRET_NAMES[name]})" for name in missing]


# ---------------------------------------------------------------------------------------------------- store
async def store_problems(redis_url: str | None, timeout_s: float) -> list[str]:
    """The store answers a PING (a "local" store is started by `up` itself: nothing to ask)."""
    if redis_url is None:
        return []
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        await _bounded("store", client.ping(), timeout_s)
    except Exception as exc:  # noqa: BLE001  (any failure is this part's one line)
        return [f"store {masked(redis_url)}: unreachable ({_short(exc)})"]
    finally:
        await client.aclose()
    return []


# ---------------------------------------------------------------------------------------------------- exchange
async def exchange_problems(exchange: Any, access: ExchangeAccess, baskets: dict[str, Any],
                            timeout_s: float) -> list[str]:
    """The exchange answers exchangeInfo; every index's pairs are listed and TRADING; the key may trade and read
    balances; the deposit address of the quote asset on the deposit network is known (asked, or configured)."""
    from core.basket_check import basket_problems
    from core.symbol_filters import parse_exchange_info
    from exchange.gateway import BinanceGateway

    where = exchange.rest_url or ("ccxt's Binance testnet" if exchange.sandbox else "ccxt's Binance")
    gw = BinanceGateway(exchange.rest_url, exchange.ws_url, access.api_key or "", access.secret or "",
                        recv_window_ms=exchange.recv_window_ms, sandbox=exchange.sandbox,
                        ws_api_url=exchange.ws_api_url, timeout_ms=int(timeout_s * 1000))
    try:
        try:
            info = await _bounded("exchangeInfo", gw.fetch_exchange_info(), timeout_s)
        except Exception as exc:  # noqa: BLE001
            return [f"exchange {where}: unreachable ({_short(exc)})"]
        problems: list[str] = []
        filters = parse_exchange_info(info)
        for basket in baskets.values():
            problems.extend(f"exchange {where}: {line}" for line in basket_problems(basket, filters))
        if not (access.api_key and access.secret):
            return problems  # the secrets check names the missing key
        problems.extend(await _key_problems(gw, where, timeout_s))
        if exchange.deposit_address is None:
            coin, network = exchange.quote_asset, exchange.deposit_network
            try:
                await _bounded("deposit address", gw.fetch_deposit_address(coin, network), timeout_s)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"exchange {where}: no deposit address for {coin} on {network} ({_short(exc)}); "
                                f"where the exchange has no capital API, set [exchange] deposit_address")
        return problems
    finally:
        await gw.close()


async def _key_problems(gw: Any, where: str, timeout_s: float) -> list[str]:
    try:
        can_trade = await _bounded("account", gw.fetch_can_trade(), timeout_s)
    except Exception as exc:  # noqa: BLE001
        return [f"exchange {where}: the API key is refused ({_short(exc)})"]
    problems = [] if can_trade else [f"exchange {where}: the API key may not trade (account canTrade is false)"]
    try:
        await _bounded("balances", gw.fetch_balance(), timeout_s)
    except Exception as exc:  # noqa: BLE001
        problems.append(f"exchange {where}: the API key cannot read balances ({_short(exc)})")
    return problems


# ---------------------------------------------------------------------------------------------------- chains
async def chain_problems(world: WorldState, timeout_s: float) -> list[str]:
    """Each chain's RPC answers with the configured chain id, and every contract the system calls there (USDC,
    the SpokePool, the index tokens) has code."""
    results = await asyncio.gather(*(_one_chain(c, timeout_s) for c in world.chains.values()))
    return [line for lines in results for line in lines]


async def _one_chain(chain: Any, timeout_s: float) -> list[str]:
    from web3 import AsyncHTTPProvider, AsyncWeb3

    w3 = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url, request_kwargs={"timeout": timeout_s}))
    try:
        try:
            chain_id = await _bounded("eth_chainId", w3.eth.chain_id, timeout_s)
        except Exception as exc:  # noqa: BLE001
            return [f"chain {chain.name}: RPC {chain.rpc_url} unreachable ({_short(exc)})"]
        if chain_id != chain.chain_id:
            return [f"chain {chain.name}: RPC {chain.rpc_url} answers chain id {chain_id}, the configuration says "
                    f"{chain.chain_id}"]
        contracts = [("USDC", chain.usdc), ("the Across SpokePool", chain.spoke_pool)]
        contracts += [(f"index {index}'s token", address) for index, address in chain.index_tokens.items()]
        problems = []
        for what, address in contracts:
            try:
                code = await _bounded("eth_getCode", w3.eth.get_code(address), timeout_s)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"chain {chain.name}: {what} at {address}: code not readable ({_short(exc)})")
                continue
            if not code:
                problems.append(f"chain {chain.name}: {what} at {address} has no code (wrong address or chain?)")
        return problems
    finally:
        await w3.provider.disconnect()


# ---------------------------------------------------------------------------------------------------- together
@dataclass
class WorldToCheck:
    """What the checks look at: the settings (exchange, baskets), the chains as the system will see them (None:
    they could not even be described, see `problems`), the exchange key, the store URL (None: started by `up`)."""

    settings: Any
    world: WorldState | None
    access: ExchangeAccess
    redis_url: str | None
    baskets: dict[str, Any]
    #: Problems found while describing the world (no deployment file, a malformed token address).
    problems: list[str]
    #: Secrets the environment needs that are missing are named too (off for the local world's own keys).
    check_secrets: bool = True


async def check_world(target: WorldToCheck) -> list[str]:
    """Every problem of the world, in a stable order: the description, secrets, store, exchange, chains."""
    timeout_s = target.settings.world_check.timeout_s
    checks: list[Callable[[], Awaitable[list[str]]]] = [
        lambda: store_problems(target.redis_url, timeout_s),
        lambda: exchange_problems(target.settings.exchange, target.access, target.baskets, timeout_s)]
    if target.world is not None:
        checks.append(lambda: chain_problems(target.world, timeout_s))  # type: ignore[arg-type]
    found = await asyncio.gather(*(c() for c in checks))
    problems = list(target.problems)
    if target.check_secrets:
        problems += secrets_problems(target.settings.environment, target.settings.exchange.mode == "paper")
    return problems + [line for lines in found for line in lines]


def external_target(settings: Any, config_dir: Any, redis_url: str | None) -> WorldToCheck:
    """The external world `settings` name: its chains from the config and the deployment file (accounts derived
    from the operator's mnemonic, if it is there), the exchange key from the secrets."""
    from actors.exchange_deposits import API_KEY_ENV, SECRET_ENV
    from chain.deployment_file import account_problems, load_deployment
    from chain.external_world import INDEX_CHAIN, deployment_path, external_world, index_tokens
    from chain.keys import DEV_MNEMONIC, MNEMONIC_ENV, derive_account
    from core.basket import load_indexes

    problems: list[str] = []
    world = None
    mnemonic = os.environ.get(MNEMONIC_ENV)
    try:
        problems += [f"indexes.{index}: no token address on {INDEX_CHAIN} (`indexmaker deploy-token {index}` "
                     f"deploys one)" for index, token in index_tokens(settings).items() if token is None]
        path = deployment_path(settings, config_dir)
        if path is None:
            raise ValueError(f"chain.deployment_file: the {settings.environment} world names its contracts in a "
                             f"deployment file")
        deployment = load_deployment(path)
        # Without the mnemonic the chains are still checked; the accounts of the dev mnemonic stand in (never used
        # to sign: the secrets check names the missing mnemonic and `up` stops).
        world = external_world(settings, deployment, mnemonic or DEV_MNEMONIC, strict=False)
        if mnemonic:  # the custody keys at hand are the world's
            problems += account_problems(deployment, settings.chain.account_indexes,
                                         lambda i: derive_account(mnemonic, i).address)
    except ValueError as exc:
        problems.extend(str(exc).splitlines())
    baskets = load_indexes(settings.data_dir / "indexes", settings.basket_files())
    # Paper mode trades nothing on the exchange: its market data is checked, not a key (none is sent to it).
    paper = settings.exchange.mode == "paper"
    access = ExchangeAccess(None, None) if paper else ExchangeAccess(os.environ.get(API_KEY_ENV),
                                                                     os.environ.get(SECRET_ENV))
    return WorldToCheck(settings, world, access, redis_url, baskets, problems)


def local_target(settings: Any, run: dict[str, Any]) -> WorldToCheck:
    """The local world as its running `up` started it (the run file): its world file, its simulator and the
    simulator's account, its redis. Its secrets are its own (none needed)."""
    from core.basket import load_indexes
    from exchange.simulator.config import TEST_API_KEY, TEST_SECRET

    exchange = settings.exchange.model_copy(update={"rest_url": run.get("exchange_url"), "ws_url": None,
                                                    "ws_api_url": None, "sandbox": False})
    baskets = load_indexes(settings.data_dir / "indexes", settings.basket_files())
    return WorldToCheck(settings.model_copy(update={"exchange": exchange}), WorldState.load(run["world_file"]),
                        ExchangeAccess(TEST_API_KEY, TEST_SECRET), run.get("redis_url"), baskets, [],
                        check_secrets=False)


def run_checks(target: WorldToCheck) -> list[str]:
    return asyncio.run(check_world(target))
