"""Every number the system uses, in one settings model: defaults here, a TOML file per environment, environment
variables (INDEXMAKER_SECTION__KEY) on top. No constant is hidden in code.

Amounts are Decimal (TOML strings like "0.01" keep their digits; TOML floats are refused for money fields).
"""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from core.route_batch import BatchPolicy
from core.route_hold import RouteHoldPolicy

REPO_ROOT = Path(__file__).resolve().parent.parent


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"write money as a string ({value!r} would pass through a float)")
    return value


def _holds_money(annotation: Any) -> bool:
    """Decimal itself, or a type built from it (Decimal | None, dict[int, Decimal])."""
    return annotation is Decimal or any(_holds_money(a) for a in get_args(annotation))


def _no_float_inside(value: Any) -> Any:
    if isinstance(value, dict):
        for v in value.values():
            _no_float_inside(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_float_inside(v)
    return _no_float(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_floats(cls, v: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and _holds_money(field.annotation):
            return _no_float_inside(v)
        return v


class CollateralConfig(_Section):
    symbol: str = "USDC"
    #: USDC has 6 decimals on chain: the ledger counts whole micro-USDC.
    unit: Decimal = Decimal("0.000001")
    #: An order whose unengaged rest falls below this is finished and the rest goes back to the user.
    order_dust: Decimal = Decimal("0.05")
    #: ... and so is an order whose rest after a batch is below this fraction of its (uncancelled) amount.
    rest_return_ratio: Decimal = Field(Decimal("0.005"), ge=0, lt=1)
    max_open_orders_per_user: int = Field(100, ge=1)


class SolverConfig(_Section):
    tick_interval_ms: int = Field(100, ge=1)
    #: Buy limit price = best ask * (1 + slippage_cap), rounded down to the tick (stays inside the cap).
    slippage_cap: Decimal = Decimal("0.01")
    #: A quote says the market is wide past this spread of the basket at the touch, in bps of its mid (Binance's
    #: large pairs quote under 1 bps, small ones 5-20; the local simulator's calm market 2, its wide regime 20).
    wide_spread_bps: Decimal = Field(Decimal("10"), gt=0)
    #: Orders are sized at the expected price (the batch's walk of the asks) times 1 + price_buffer.
    price_buffer: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    #: After the first new order arrives, the solver waits until none came for collect_quiet_ms (at most
    #: collect_max_ms) before planning: orders sent together are netted into one batch.
    collect_quiet_ms: int = Field(5, ge=0)
    collect_max_ms: int = Field(250, ge=0)
    #: With nothing pending, the solver still looks every idle_poll_ms (new orders wake it at once).
    idle_poll_ms: int = Field(1000, ge=1)
    #: An order the planner defers this long for no liquidity (or too small to buy one index unit) is rejected.
    reject_after_ms: int = Field(60_000, ge=0)
    #: Book levels a limit may reach into.
    max_levels: int = Field(5, ge=1)
    #: Collateral is divided by this so that prices at the limit plus exchange fees never exceed it.
    fee_factor: Decimal = Decimal("1.002")
    #: Collateral one index order may engage in one batch.
    max_order_notional: Decimal = Decimal("100000")
    #: Notional of one batch at limit prices.
    max_batch_notional: Decimal = Decimal("250000")
    #: Notional of all batches in flight together.
    max_in_flight_notional: Decimal = Decimal("500000")
    #: Floor for one asset order's notional, on top of the exchange's own minimum; the surplus becomes inventory.
    min_asset_notional: Decimal = Decimal("5")
    #: Index units are counted in this quantum (the index token has 18 decimals).
    index_unit: Decimal = Decimal("1e-18")
    max_orders_per_batch: int = Field(10000, ge=1)
    #: An order that waits this long on a stale book (core/stale_books.py) is rejected saying which book; 0: it
    #: waits as long as the book stays stale. Never counted towards reject_after_ms (that is the market's verdict).
    stale_reject_after_ms: int = Field(900_000, ge=0)
    #: Most executions the solver reads from the sender's hand-off at once, and how long the executions of a batch
    #: still open wait for the rest: each read costs a commit and a call per shard, so a batch whose answers come
    #: within tens of ms is settled in one go rather than in several partial rounds.
    executions_batch: int = Field(5_000, ge=1)
    executions_linger_ms: int = Field(250, ge=0)


class ExchangeConfig(_Section):
    name: str = "binance"
    #: Binance serves three hosts (spec/binance.md, Hosts): REST; market streams (`ws_url`: ccxt appends `/ws`);
    #: the WebSocket API of orders and user data (`ws_api_url`, the whole URL, `.../ws-api/v3`). None: ccxt's own
    #: (Binance's; its spot testnet's with `sandbox`); the local world fills in its simulator's, which serves
    #: all three on one address (`ws_api_url` None then means `ws_url` + /ws-api/v3).
    rest_url: str | None = None
    ws_url: str | None = None
    ws_api_url: str | None = None
    #: ccxt's sandbox mode: Binance's spot testnet where a URL above is not given.
    sandbox: bool = False
    #: Where the exchange takes deposits of `quote_asset` on `deposit_network`, for an exchange without a capital
    #: (deposit-address) API, as Binance's spot testnet; None: asked from the exchange.
    deposit_address: str | None = None
    quote_asset: str = "USDC"
    #: Binance's default taker commission, in the received asset.
    commission_rate: Decimal = Decimal("0.001")
    recv_window_ms: int = Field(10000, ge=1, le=60000)
    #: Fraction of each exchange rate limit the sender allows itself.
    rate_limit_safety: Decimal = Decimal("0.95")
    market_shards: int = Field(2, ge=1)
    order_book_depth: int = Field(100, ge=5)
    deposit_network: str = "BASE"
    #: "live": the system trades on the exchange at rest_url/ws_url. "paper": on a local paper exchange
    #: (exchange/simulator/paper.py, `[paper]`) that mirrors rest_url/ws_url's market data and matches the orders
    #: itself: nothing reaches the exchange's order or account endpoints, balances are the paper account's.
    mode: Literal["live", "paper"] = "live"


class ExchangeGuardsConfig(_Section):
    """What the order sender checks and stops on before anything reaches the exchange."""

    #: The exchange's average price (PERCENT_PRICE_BY_SIDE's reference) is fetched again for a batch's symbol once
    #: the cached value is this old (and never used older than the filter's avgPriceMins window).
    avg_price_max_age_ms: int = Field(60_000, ge=1)
    #: Request weight of GET /api/v3/avgPrice (Binance: 2).
    avg_price_weight: int = Field(2, ge=1)
    #: Every this long the sender refreshes, before they age out, the average prices of the symbols a batch used in
    #: the last avg_price_keep_ms, so that a batch does not wait for them (0: fetched only when a batch needs them).
    #: Cost: 2 weight per symbol per avg_price_max_age_ms; 155 symbols, 60 s: about 310 of the 6,000 per minute.
    avg_price_refresh_ms: int = Field(15_000, ge=0)
    avg_price_keep_ms: int = Field(1_800_000, ge=0)
    #: This many exchange rejects in a row for one symbol stop sending for it (any insufficient-balance reject
    #: stops the whole account at once).
    breaker_threshold: int = Field(3, ge=1)
    #: A tripped breaker clears by itself after this long (it trips again at once if the rejects go on: one more
    #: reject for the account, `breaker_threshold` for a symbol); 0: only `indexmaker resume` clears it.
    breaker_cool_off_ms: int = Field(300_000, ge=0)
    #: Pairs' status (exchangeInfo, weight 20): read every status_poll_ms for the pairs traded lately, so a halt
    #: is known before a batch meets it, and every closed_poll_ms while a pair is halted, to know when it reopens.
    status_poll_ms: int = Field(60_000, ge=1)
    closed_poll_ms: int = Field(5_000, ge=1)


#: The roles the chain side signs for (chain/stack.py): every external world derives them from its mnemonic.
ACCOUNT_ROLES = ("admin", "solver", "base_wallet", "custody")


class ChainConfig(_Section):
    """The chain side (chain/, actors/chain_actor.py, actors/router_actor.py). Contract addresses and RPC URLs of
    the local world come from its world state file; an external world's contracts from `deployment_file`."""

    #: An external world's deployment file (USDC and the Across SpokePools per chain, chain/deployment_file.py),
    #: relative to config/ unless absolute; the local world writes its own.
    deployment_file: str | None = None
    arbitrum_chain_id: int = 42161
    base_chain_id: int = 8453
    #: An external world's RPC endpoints (required outside local); the local world's are its anvil nodes', in its
    #: world file.
    arbitrum_rpc: str | None = None
    base_rpc: str | None = None
    #: BIP-44 index of each role's account under INDEXMAKER_CHAIN_MNEMONIC (the local world's are world/chains.py's
    #: own): custody takes users' deposits on both chains, base_wallet pays the exchange on Base and the users'
    #: withdrawals on Arbitrum, solver mints the tokens, admin deploys them (`indexmaker deploy-token`).
    account_indexes: dict[str, int] = Field(
        default_factory=lambda: {"admin": 0, "solver": 1, "base_wallet": 3, "custody": 4})
    #: Blocks on top of a user's deposit on Arbitrum before it is credited (a deposit dropped by a reorg within
    #: this depth is never credited).
    confirmations: int = Field(2, ge=0)
    #: Blocks on top of a user's deposit to custody on Base before it is credited (Base carries the index: such a
    #: deposit takes only the last hop to the exchange, no bridge).
    base_confirmations: int = Field(2, ge=0)
    #: Blocks on top of the relayer's fill on Base before the route moves on.
    fill_confirmations: int = Field(0, ge=0)
    usdc_decimals: int = Field(6, ge=0)
    index_token_decimals: int = Field(18, ge=0)
    #: Blocks per eth_getLogs request (public RPCs refuse big ranges).
    max_block_range: int = Field(2000, ge=1)
    #: Processed blocks whose hashes the deposit listener keeps to notice a reorg.
    reorg_window: int = Field(256, ge=1)
    #: Across: the relayer fee offered, a fraction of the input; output = input * (1 - rate), rounded down to the
    #: USDC unit (core.fees.hop_by_rate).
    bridge_fee_rate: Decimal = Decimal("0.001")
    #: Chain seconds the relayer has to fill our Across deposit; past it the route fails (the refund is manual).
    fill_deadline_s: int = Field(3600, ge=1)
    #: USDC per native token (ETH on both chains), per chain id: the rate gas is charged to users at.
    native_price: dict[int, Decimal] = Field(
        default_factory=lambda: {42161: Decimal("3000"), 8453: Decimal("3000")})
    #: Routing holds (core.route_hold): per origin chain id, the most gas in USDC that a route carrying one deposit
    #: costs. A credited deposit holds this plus the bridge's cut until its route's real cost is charged; an order
    #: cannot engage the hold. On the local world a bridged route's two transactions cost ~0.5 USDC of gas (anvil's
    #: 1 gwei at native_price) and the Base transfer alone ~0.15: the defaults leave room for dearer blocks.
    route_hold_gas: dict[int, Decimal] = Field(
        default_factory=lambda: {42161: Decimal("1.50"), 8453: Decimal("0.50")})
    #: Own transactions (chain.tx_sender): receipt wait before a rebroadcast, receipt polling interval, broadcasts
    #: per attempt before giving up for this round (the pause after a failed broadcast is the [store] retry).
    receipt_timeout_ms: int = Field(60_000, ge=1)
    receipt_poll_ms: int = Field(20, ge=1)
    max_broadcasts: int = Field(5, ge=1)
    #: Batching users' deposits into one bridge transfer (core.route_batch.BatchPolicy): a batch closes at this many
    #: deposits, or when its total reaches batch_close_amount USDC (none: no amount trigger), or when its oldest
    #: deposit has waited batch_max_wait_ms. 1 deposit = every deposit routed alone at once.
    batch_max_deposits: int = Field(1, ge=1)
    batch_close_amount: Decimal | None = Field(None, gt=0)
    batch_max_wait_ms: int = Field(0, ge=0)

    @field_validator("account_indexes")
    @classmethod
    def _roles(cls, v: dict[str, int]) -> dict[str, int]:
        missing = sorted(set(ACCOUNT_ROLES) - set(v))
        if missing:
            raise ValueError(f"account_indexes names no index for {', '.join(missing)}")
        if any(i < 0 for i in v.values()):
            raise ValueError("account_indexes: a derivation index is >= 0")
        return v

    @property
    def usdc_unit(self) -> Decimal:
        """One base unit of USDC on chain (1e-6): every chain amount is a whole number of it."""
        return Decimal(1).scaleb(-self.usdc_decimals)

    @property
    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(self.batch_max_deposits, self.batch_close_amount, self.batch_max_wait_ms)

    @property
    def hold_policy(self) -> RouteHoldPolicy:
        return RouteHoldPolicy(self.base_chain_id, self.bridge_fee_rate, self.usdc_unit, dict(self.route_hold_gas))


class GatewayConfig(_Section):
    """Every number of the websocket gateway (spec/fix-json.md §10.8): limits, timeouts, sizes. The listening port is
    `ports.gateway`; `port` here is what the launcher passes on (0: any free port, tests)."""

    #: The address the gateway listens on (config/local.toml: loopback; an external world: the interface users
    #: reach, e.g. "0.0.0.0"). None: the launcher's loopback (world/ports.py LOOPBACK).
    host: str | None = None
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port (tests)
    path: str = "/ws"
    server_comp_id: str = "SERVER"
    #: Chains whose users we serve (the configured Arbitrum and Base: `chain`'s ids); any other chain_id is
    #: BAD_FIELD.
    allowed_chain_ids: frozenset[int] = frozenset({42161, 8453})

    #: Frames above this get NAK TOO_LARGE and the session goes on ...
    max_frame_bytes: int = Field(16_384, ge=512)
    #: ... frames above this cannot even be read: websockets closes the connection (1009).
    hard_max_frame_bytes: int = Field(1_048_576, ge=1024)
    max_connections: int = Field(20_000, ge=1)
    max_sessions_per_address: int = Field(4, ge=1)

    #: Per connection, every frame counts 1 (checked before anything is parsed beyond JSON).
    session_rate_per_s: int = Field(50, ge=1)
    session_burst: int = Field(100, ge=1)
    #: Per user (the signer's address, all its sessions together), weighted by message type.
    user_weight_per_s: int = Field(200, ge=1)
    user_burst: int = Field(400, ge=1)
    #: Whole gateway, every frame counts 1.
    global_rate_per_s: int = Field(100_000, ge=1)
    global_burst: int = Field(100_000, ge=1)
    #: msg_type -> weight for the user limit; overrides the plugin's defaults; unknown types weigh 1.
    message_weights: dict[str, int] = Field(default_factory=dict)

    #: A request's header timestamp must be within this of the server's clock (replay window, §10.2).
    max_clock_skew_ms: int = Field(60_000, ge=1)
    #: The server sends a Heartbeat after this long without sending, a TestRequest after this long without hearing.
    heartbeat_interval_ms: int = Field(10_000, ge=10)
    #: Nothing heard for this long: the connection is closed (4000). The user resumes from the store.
    idle_timeout_ms: int = Field(30_000, ge=10)
    #: A connection that has not logged on within this is closed (4002).
    logon_timeout_ms: int = Field(10_000, ge=10)

    #: Frames queued for one slow client beyond this: the session is closed (4001); it resumes from the store.
    max_outbound_queue: int = Field(10_000, ge=10)
    #: At most this many store writes wait; beyond, new requests get SERVER_BUSY (nothing is taken).
    max_pending_writes: int = Field(100_000, ge=10)
    commit_max_batch: int = Field(2_000, ge=1)
    #: Accepted requests go to the plugin in chunks of at most this many, the event loop served between chunks: after
    #: a hiccup the backlog (each request's application work and its signed report) does not hold every ACK behind
    #: it in one synchronous block.
    dispatch_chunk: int = Field(64, ge=1)
    commit_write_timeout_s: float = Field(5.0, gt=0)
    #: Stored frames read per page when resending after a Logon.
    resend_page: int = Field(500, ge=1)
    #: Messages kept per user and direction (the newest): a Logon resuming from before them is refused with
    #: RESUME_TOO_OLD (protocol/README.md, "Retention"). 20,000 is weeks of an active trader's reports.
    report_retention: int = Field(20_000, ge=1)
    #: Quote messages may come unsigned on a logged-on session (the reference's rule). Off: §10.2 signs them too.
    allow_unsigned_quotes: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "GatewayConfig":
        if self.hard_max_frame_bytes < self.max_frame_bytes:
            raise ValueError("hard_max_frame_bytes must be >= max_frame_bytes")
        if self.idle_timeout_ms <= self.heartbeat_interval_ms:
            raise ValueError("idle_timeout_ms must exceed heartbeat_interval_ms (a TestRequest needs time)")
        for name, weight in self.message_weights.items():
            if not 1 <= weight <= self.user_burst:
                raise ValueError(f"weight of {name} must be in [1, user_burst], got {weight}")
        return self


class SystemConfig(_Section):
    """How the system is cut: the order-book shards users are hashed to, and how often the chain listener and the
    router look. What it serves is the index registry (`[indexes.<SYMBOL>]`, IndexConfig)."""

    order_shards: int = Field(2, ge=1)
    poll_ms: int = Field(50, ge=1)


#: An index's wire symbol (FIX/JSON Symbol): [A-Z0-9], so "SY100.dev" is not one.
INDEX_SYMBOL = re.compile(r"^[A-Z0-9]{1,20}$")
#: What a local world does with an index whose token has no address yet: deploys it (config/local.toml).
DEPLOY = "deploy"
#: `[store] url` for a redis-server the world starts itself; any other value is a URL of one of these schemes.
LOCAL_STORE = "local"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class IndexConfig(_Section):
    """One served index: its basket (a file under data_dir/indexes), its token's name, and where the token lives:
    "deploy" (the local world deploys one per index) or chain name -> the token's address."""

    basket: str
    name: str = ""
    token: str | dict[str, str] = DEPLOY

    @field_validator("token")
    @classmethod
    def _token(cls, v: Any) -> Any:
        if isinstance(v, str) and v != DEPLOY:
            raise ValueError(f'token must be "{DEPLOY}" or a table chain name -> address, got {v!r}')
        return v


def _dev_indexes() -> dict[str, IndexConfig]:
    """Without a registry in the file: the 10-asset development basket (tests and throwaway runs)."""
    return {"SY100DEV": IndexConfig(basket="SY100.dev.json", name="IndexMaker SY100 dev")}


class MintConfig(_Section):
    """The mint leg (actors/minter.py): how many mints go out in one chain call, and how a failed one is retried."""

    #: Most mints in one call to the chain actor (their transactions are signed in nonce order and land together).
    batch: int = Field(100, ge=1)
    #: After a push wakes it, the minter waits this long for company: the shards of one batch push at about the
    #: same time, and their mints then go out in one chain call (0: at once).
    linger_ms: int = Field(20, ge=0)
    #: A failed mint (or a shard that did not take its result) is tried again after retry_initial_ms, doubling
    #: per failure of the same order up to retry_max_ms (the mint is keyed by order id: a retry never mints twice).
    retry_initial_ms: int = Field(200, ge=1)
    retry_max_ms: int = Field(5_000, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "MintConfig":
        if self.retry_initial_ms > self.retry_max_ms:
            raise ValueError("retry_initial_ms must not exceed retry_max_ms")
        return self


#: The parts of the local world started as an external one, and their default addresses (127.0.0.2 is left to a
#: second Ray node).
EXTERNAL_HOSTS = {"exchange_rest": "127.0.0.3", "exchange_streams": "127.0.0.4", "exchange_ws_api": "127.0.0.5",
                  "arbitrum": "127.0.0.6", "base": "127.0.0.7", "store": "127.0.0.8"}


class LocalWorldConfig(_Section):
    """The local world `indexmaker up` and `make demo` start (world/): its users, its chains' finality, the exchange
    simulator's pace."""

    #: Funded user accounts of the dev mnemonic (`indexmaker dev-keys`).
    users: int = Field(3, ge=0)
    #: Automine chains: a deposit is final once mined (this replaces chain.confirmations and base_confirmations
    #: locally); the listener still checks reorgs.
    confirmations: int = Field(0, ge=0)
    #: The simulator credits a transfer to its deposit address after this many blocks, read every deposit_poll_ms.
    exchange_confirmations: int = Field(1, ge=0)
    deposit_poll_ms: int = Field(20, ge=1)
    #: The simulator's price process step (0: prices move only when a test steps them).
    price_update_ms: int = Field(100, ge=0)
    #: The Across relayer's look for deposits to fill, and our own transactions' receipt polling, on anvil.
    relayer_poll_ms: int = Field(20, ge=1)
    receipt_poll_ms: int = Field(20, ge=1)
    #: The local world started on its own as an external one (`python -m world.external_local`): each part on a
    #: loopback address of its own, none the local world's, as Binance's three hosts, two chains and a Redis would be.
    external_hosts: dict[str, str] = Field(default_factory=lambda: dict(EXTERNAL_HOSTS))

    @field_validator("external_hosts")
    @classmethod
    def _external_hosts(cls, v: dict[str, str]) -> dict[str, str]:
        import ipaddress

        if set(v) != set(EXTERNAL_HOSTS):
            raise ValueError(f"name exactly {', '.join(EXTERNAL_HOSTS)}")
        for part, host in v.items():
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"{part}: {host!r} is not a loopback address (127.0.0.0/8)")
        if len(set(v.values())) != len(v):
            raise ValueError("each part has an address of its own")
        return v


class SenderConfig(_Section):
    """The order sender's pace, request weights and waits (actors/order_sender.py)."""

    #: A REST request unanswered after this long is a StatusUnknown (then resolved by a query).
    request_timeout_ms: int = Field(5_000, ge=1)
    #: Clock offset and stamping allowance on top of recvWindow before a "not found" is final.
    resolve_margin_ms: int = Field(1_000, ge=0)
    #: Requests outstanding at once: one batch's orders (up to Binance's 100 orders per 10 s) go out in one wave.
    max_in_flight: int = Field(128, ge=1)
    #: While a wave is started, yield to the event loop after every this many requests (0: start the whole wave).
    launch_yield_every: int = Field(16, ge=0)
    time_in_force: str = "IOC"
    #: Request weights (Binance: POST order 1, GET order 4, GET myTrades with orderId 5, exchangeInfo 20, account 20).
    order_weight: int = Field(1, ge=1)
    query_weight: int = Field(4, ge=1)
    trades_weight: int = Field(5, ge=1)
    info_weight: int = Field(20, ge=1)
    account_weight: int = Field(20, ge=1)
    #: Idle REST connections are kept this long: batches minutes apart still go out over open connections.
    http_keepalive_s: float = Field(300.0, gt=0)
    #: A final order whose fills have not all arrived by the stream after this long is asked for its trades.
    missing_fills_grace_ms: int = Field(2_000, ge=0)
    #: Back-off after a 429 that carried no Retry-After (a failed query or stream waits the [store] retry).
    default_retry_after_s: int = Field(1, ge=0)


class MonitorConfig(_Section):
    """The monitor (actors/monitor.py): how often it polls every actor, and the limits past which the system is
    unhealthy (/health 503, actors/system_view.py HealthLimits)."""

    interval_s: float = Field(5.0, gt=0)
    inspect_timeout_s: float = Field(3.0, gt=0)
    #: p99 of a market shard's recent book update lags.
    max_book_lag_ms: float = Field(5_000, gt=0)
    #: Symbols without a fresh book, per market shard.
    max_stale_symbols: int = Field(0, ge=0)
    #: Reports a shard stored and the gateway has not taken.
    max_undelivered_reports: int = Field(10_000, ge=0)
    #: Gateway store writes queued.
    max_pending_writes: int = Field(50_000, ge=0)
    #: Solver decisions stored and not carried out.
    max_solver_outbox: int = Field(1_000, ge=0)


class StoreConfig(_Section):
    """Where the store (redis-server) answers: `url`, or "local" for one the local world starts (its address is the
    launcher's). Every Redis client (actors, CLI, world) builds from `Settings.redis_url`."""

    #: "local", or redis://[:password@]host:port/db, rediss://... (TLS), unix:///path.
    url: str = "local"
    #: With url "local": a store reached at host:`ports.redis` instead (None: the one the launcher starts).
    host: str | None = None
    db: int = Field(0, ge=0)
    #: The one retry policy (store/retry.py) of every loop that waits out the store or a peer (a restarting actor,
    #: the exchange, a node): the first wait and the longest (ms), each drawn in [wait / 2, wait] as it doubles.
    retry_base_ms: int = Field(200, ge=1)
    retry_cap_ms: int = Field(2_000, ge=1)
    #: Failures that do not mean "away" (a refusal, a bug) a loop takes before it gives up and raises.
    retry_max_failures: int = Field(5, ge=1)


class HttpConfig(_Section):
    """The HTTP side service (GET /health, the signed invoice and balance routes); its port is `ports.invoices`."""

    #: The address it listens on; None: the launcher's loopback (as the gateway's host).
    host: str | None = None
    #: How long /health waits for the monitor before answering 503.
    health_timeout_s: float = Field(3.0, gt=0)


class PortsConfig(_Section):
    redis: int = 16379
    ray: int = 6380
    gateway: int = 8765
    simulator: int = 18080
    invoices: int = 8766


class RayConfig(_Section):
    """Where the actors run (world/launcher.py, `indexmaker up`)."""

    #: None: `indexmaker up` starts a Ray instance of its own; "auto", "host:port" or "ray://host:10001": attach.
    address: str | None = None
    namespace: str = "indexmaker"
    #: Custom resources an actor asks for, by actor name or a name prefix ending in "*" ("market-*"): it then runs
    #: only on nodes started with them (`ray start --resources '{"exchange": 1}'`). Amounts are Ray resource units.
    placement: dict[str, dict[str, float]] = Field(default_factory=dict)


class MarketDataConfig(_Section):
    """The market-data shards (actors/market_data.py): when a book counts as stale, and the feed's pacing."""

    #: A book with no diff (nor snapshot) for this long is stale: not planned on, quotes refused, health degraded.
    stale_after_ms: int = Field(5_000, ge=1)
    #: Depth snapshots fetched back to back at start and after a reconnect (cost units of ccxt's throttle).
    snapshot_burst: int = Field(100, ge=1)
    #: Book-lag samples kept for the percentiles in inspect().
    lag_samples: int = Field(20_000, ge=1)
    #: Reconnect backoff after a dropped websocket: the first wait, then doubled up to the cap.
    reconnect_min_ms: int = Field(100, ge=1)
    reconnect_max_ms: int = Field(5_000, ge=1)


class ArrivalConfig(_Section):
    """The arrival value accepted orders are stamped with (core/arrival.py, actors/order_books.py)."""

    #: Each order shard reads the best bid and ask of every market shard this often (one `top()` call per market
    #: shard), in the background: the accept path only reads the latest values.
    refresh_ms: int = Field(200, ge=10)
    #: A value older than this (the books stopped answering) is not stamped: the order carries none.
    max_age_ms: int = Field(2_000, ge=1)


class PaperConfig(_Section):
    """Paper mode (`[exchange] mode = "paper"`): the paper exchange's account and its mirror of the exchange."""

    #: The paper account's starting balances, asset -> amount (free); deposits to its address come on top.
    balances: dict[str, Decimal] = Field(default_factory=lambda: {"USDC": Decimal("1000000")})
    #: The deposit address the paper exchange gives the router ("": one derived from the account's key, which only
    #: the local world's chain may receive: on a real chain name an address you control, or routed USDC is lost).
    deposit_address: str = ""
    #: The exchange's avgPrice (the filters' reference) is read again this often, per symbol (weight 2 each).
    avg_price_poll_ms: int = Field(30_000, ge=1)
    #: Depth diff cadence of the paper exchange's own streams (what the market shards read).
    depth_interval_ms: int = Field(100, ge=10)
    #: Where the paper exchange listens (the actors reach it there; None: the launcher's loopback, world/ports.py),
    #: its port (0: any free one), and how long it may take to mirror every book at start.
    host: str | None = None
    port: int = Field(0, ge=0, le=65535)
    ready_timeout_s: float = Field(60.0, gt=0)


class ReservesConfig(_Section):
    """The reserves check (core/reserves.py; `indexmaker reconcile`, the monitor): what the books say is held
    against the exchange account's balances and the index tokens' on-chain supply."""

    #: Seconds between two checks by the monitor (0: the monitor does not check; `reconcile` still does).
    interval_s: float = Field(60.0, ge=0)
    #: A difference is reported only when this many reads in a row see it beyond the tolerance: one read taken
    #: while a fill travels from the exchange to the books sees a difference that is not one.
    confirm_reads: int = Field(2, ge=1)
    #: Pause between two reads of one check (`reconcile`): the time a fill needs to reach the books.
    reread_ms: int = Field(1000, ge=0)
    #: Largest |exchange - books| per asset that is not a difference; `tolerances` overrides it per asset. The
    #: books count whole base units and exact costs, so an account nobody else touches differs by 0 once quiet;
    #: the default, one base unit of an 8-decimal asset, is below one micro-USDC.
    tolerance: Decimal = Field(Decimal("0.00000001"), ge=0)
    tolerances: dict[str, Decimal] = Field(default_factory=dict)
    #: The same for an index token's supply against the units the books minted (index units).
    supply_tolerance: Decimal = Field(Decimal("0"), ge=0)
    #: What the exchange account held before the system's first deposit, per asset. The quote asset's line
    #: (books: this + deposits credited - what fills cost) is compared only when it is named here. The default is
    #: the local simulator's test account (exchange/simulator/config.py starts it with 1,000,000 USDC).
    opening: dict[str, Decimal] = Field(default_factory=lambda: {"USDC": Decimal("1000000")})
    #: Longest wait for one part's answer (a shard, the solver, the sender's account request, the chain).
    read_timeout_s: float = Field(10.0, gt=0)


class WorldCheckConfig(_Section):
    """The checks `indexmaker up` runs on the configured world before it starts (world/world_check.py)."""

    #: Longest wait for one answer (an RPC, the exchange, the store): every part is asked at once, so a world with
    #: nothing reachable is named part by part within about twice this.
    timeout_s: float = Field(5.0, gt=0)

class WithdrawalConfig(_Section):
    """Users' withdrawals of USDC to Arbitrum (core/withdrawal.py): exchange -> our Base wallet -> Across -> user."""

    #: The exchange's name of the network it withdraws to (our Base wallet).
    exchange_network: str = "BASE"
    #: Smallest withdrawal a user may ask for (USDC, fees included): below it the route's fees eat the payout.
    minimum: Decimal = Field(Decimal("5"), gt=0)
    #: How often the withdrawal actor looks at the withdrawals in flight (one exchange history call for all).
    poll_ms: int = Field(2_000, gt=0)
    #: USDC charged for the Arbitrum transfer that pays the user, estimated (charged before it is sent): anvil's
    #: 1 gwei at native_price makes an ERC-20 transfer ~0.15.
    payout_gas: Decimal = Field(Decimal("0.20"), ge=0)


class Settings(BaseSettings):
    """The whole configuration. `Settings.load("prod.toml")` reads a file; env vars override it."""

    model_config = SettingsConfigDict(env_prefix="INDEXMAKER_", env_nested_delimiter="__", extra="forbid")
    toml_file: ClassVar[Path | None] = None

    environment: str = "local"
    data_dir: Path = REPO_ROOT / "data"
    state_dir: Path = REPO_ROOT / "state"
    collateral: CollateralConfig = CollateralConfig()
    solver: SolverConfig = SolverConfig()
    exchange: ExchangeConfig = ExchangeConfig()
    exchange_guards: ExchangeGuardsConfig = ExchangeGuardsConfig()
    chain: ChainConfig = ChainConfig()
    ports: PortsConfig = PortsConfig()
    ray: RayConfig = RayConfig()
    gateway: GatewayConfig = GatewayConfig()
    system: SystemConfig = SystemConfig()
    #: The indexes served, by wire symbol (`[indexes.SY100]`): a file's registry replaces this default whole.
    indexes: dict[str, IndexConfig] = Field(default_factory=_dev_indexes)
    local: LocalWorldConfig = LocalWorldConfig()
    mint: MintConfig = MintConfig()
    store: StoreConfig = StoreConfig()
    sender: SenderConfig = SenderConfig()
    monitor: MonitorConfig = MonitorConfig()
    http: HttpConfig = HttpConfig()
    market_data: MarketDataConfig = MarketDataConfig()
    arrival: ArrivalConfig = ArrivalConfig()
    reserves: ReservesConfig = ReservesConfig()
    world_check: WorldCheckConfig = WorldCheckConfig()
    paper: PaperConfig = PaperConfig()
    withdrawal: WithdrawalConfig = WithdrawalConfig()

    def basket_files(self) -> dict[str, str]:
        """Index symbol -> its basket file under data_dir/indexes (core.basket.load_indexes reads them)."""
        return {symbol: entry.basket for symbol, entry in self.indexes.items()}

    @property
    def redis_url(self) -> str | None:
        """The store's URL; None for a "local" store not started yet (the launcher fills in the one it starts)."""
        if self.store.url != LOCAL_STORE:
            return self.store.url
        if self.store.host is None:
            return None
        return f"redis://{self.store.host}:{self.ports.redis}/{self.store.db}"

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        # A buy pays its commission in the received asset, so one net unit costs price / (1 - rate): the headroom
        # must cover that, or an order could be charged more than it engaged.
        if self.solver.fee_factor * (1 - self.exchange.commission_rate) < 1:
            raise ValueError(
                f"solver.fee_factor {self.solver.fee_factor} does not cover exchange.commission_rate "
                f"{self.exchange.commission_rate}: need fee_factor * (1 - commission_rate) >= 1"
            )
        if not (Decimal(0) < self.solver.slippage_cap < 1):
            raise ValueError("solver.slippage_cap must be between 0 and 1")
        if not (Decimal(0) < self.exchange.rate_limit_safety <= 1):
            raise ValueError("exchange.rate_limit_safety must be in (0, 1]")
        # The collateral ledger counts what arrives on chain: its unit is USDC's base unit there.
        if self.collateral.unit != self.chain.usdc_unit:
            raise ValueError(f"collateral.unit {self.collateral.unit} differs from the chain's USDC unit "
                             f"{self.chain.usdc_unit} (chain.usdc_decimals {self.chain.usdc_decimals})")
        if not (Decimal(0) <= self.chain.bridge_fee_rate < 1):
            raise ValueError("chain.bridge_fee_rate must be in [0, 1)")
        if self.market_data.reconnect_min_ms > self.market_data.reconnect_max_ms:
            raise ValueError("market_data.reconnect_min_ms must not exceed market_data.reconnect_max_ms")
        if self.store.url != LOCAL_STORE and not self.store.url.startswith(REDIS_SCHEMES):
            raise ValueError(f"store.url must be \"{LOCAL_STORE}\" or a URL starting with {', '.join(REDIS_SCHEMES)} "
                             f"(got {self.store.url!r})")
        if self.store.retry_base_ms > self.store.retry_cap_ms:
            raise ValueError("store.retry_base_ms must not exceed store.retry_cap_ms")
        if not self.indexes:
            raise ValueError("indexes: the registry serves no index (add an [indexes.<SYMBOL>] table)")
        chains = {self.chain.arbitrum_chain_id, self.chain.base_chain_id}
        if not self.gateway.allowed_chain_ids <= chains or self.chain.arbitrum_chain_id not in \
                self.gateway.allowed_chain_ids:
            raise ValueError(f"gateway.allowed_chain_ids {sorted(self.gateway.allowed_chain_ids)} must be among the "
                             f"configured chains {sorted(chains)} and include Arbitrum's "
                             f"({self.chain.arbitrum_chain_id}), where users deposit")
        for symbol in self.indexes:
            if not INDEX_SYMBOL.match(symbol):
                raise ValueError(f"indexes.{symbol}: an index symbol is 1 to 20 of A-Z and 0-9 (a FIX/JSON Symbol)")
        for chain_id in (self.chain.arbitrum_chain_id, self.chain.base_chain_id):
            if self.chain.native_price.get(chain_id, Decimal(0)) <= 0:
                raise ValueError(f"chain.native_price has no positive price for chain id {chain_id}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "Settings":
        """Defaults < TOML file < environment < explicit overrides."""
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        bound = type("Settings", (cls,), {"toml_file": Path(path) if path else None})
        return bound(**overrides)
