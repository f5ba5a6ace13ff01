"""The `indexmaker` command.

    indexmaker up [--config FILE] [--address ray://...|auto] [--state-dir DIR] [--fresh] [--foreground]
    indexmaker up --check-only [--config FILE]       # the world checks alone; exit 1 on a problem
    indexmaker deploy-token SYMBOL --config FILE      # an index token on the configured Base, by the operator
    indexmaker status [--state-dir DIR] [--json]      # exit 1 if something is down
    indexmaker down [--state-dir DIR]                 # stops cleanly; the state stays in DIR
    indexmaker invoice ID [--key ...] [--url ...]     # a stored Mint Invoice, again
    indexmaker compact-store [--state-dir DIR]        # rewrite the store's AOF now (cron it at a quiet hour)
    indexmaker resume SYMBOL | --account [--state-dir DIR]  # clear a circuit breaker of the order sender
    indexmaker deposit AMOUNT --key ... [--chain arbitrum|base]   # USDC to custody, followed until credited
    indexmaker deposit-tokens INDEX QUANTITY --key ...  # index tokens to custody on Base, for redemption
    indexmaker balance --key ...                      # the ledger's parts, deposits, tokens held and credited
    indexmaker withdraw AMOUNT --key ... [--to ADDR] [--max-fee F]   # USDC back to Arbitrum, followed until paid
    indexmaker indexes [--brief] [--json]             # the served indexes, their assets and live prices
    indexmaker dev-keys                               # the local world's funded user keys
    indexmaker reconcile [--state-dir DIR] [--json]   # books vs exchange and chain; exit 1 on a difference
    indexmaker config check|show [FILE]
    indexmaker order buy|sell|cancel|invoice ...      # a FIX/JSON user client (indexmaker order --help)
    indexmaker demo [--port N]                        # the whole flow on a throwaway local world
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UP_TIMEOUT_S = 300.0
DOWN_TIMEOUT_S = 120.0


# ---------------------------------------------------------------------------------------------------- config
def _config(args: argparse.Namespace) -> int:
    from world.config_check import check

    result = check(args.file)
    if not result.ok:
        print(f"config {result.file} is not valid ({len(result.errors)} problem(s)):", file=sys.stderr)
        for line in result.errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    if args.action == "show":
        print(json.dumps(result.settings.model_dump(mode="json"), indent=2))
    else:
        print(f"config {result.file}: ok ({result.settings.environment})")
        for note in result.notes:
            print(f"  {note}")
    return 0


def _settings(config: str | None):  # noqa: ANN202
    import core  # noqa: F401
    from core.config import Settings

    return Settings.load(config)


def _state_dir(args: argparse.Namespace) -> Path:
    """--state-dir, else the config's state_dir (INDEXMAKER_STATE_DIR, the TOML, or ./state)."""
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser().resolve()
    return Path(_settings(getattr(args, "config", None)).state_dir).expanduser().resolve()


# ---------------------------------------------------------------------------------------------------- up
def _up(args: argparse.Namespace) -> int:
    from world.config_check import check
    from world.run_file import pid_alive, read_run

    result = check(args.config)
    if not result.ok:
        print(f"config {result.file} is not valid:", *(f"  {e}" for e in result.errors), sep="\n", file=sys.stderr)
        return 2
    settings = result.settings
    state_dir = _state_dir(args)
    if args.check_only or settings.environment != "local":
        problems = _world_problems(settings, state_dir)
        if problems is None:
            return 1
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print(f"world check: {len(problems)} problem(s); nothing started", file=sys.stderr)
            return 1
        print(f"world check: ok ({settings.environment})", flush=True)
        if args.check_only:
            return 0
    address = args.address or settings.ray.address
    run = read_run(state_dir)
    if run is not None and pid_alive(run.get("pid")):
        print(f"already running (service pid {run['pid']}, phase {run.get('phase')}): gateway {run.get('gateway_url')}"
              f"\n  `indexmaker status --state-dir {state_dir}` for details, `indexmaker down` to stop it")
        return 0
    if run is not None and run.get("phase") != "down":
        ended = _end_leftovers(state_dir, run)  # a crashed service's world would hold the ports and the files
        if ended:
            print(f"the last run had crashed; stopped what it left: {', '.join(ended)}")
    busy = _busy_ports(settings)
    if busy:
        print(f"in use by another process: {', '.join(busy)}; free it or set another port in the config",
              file=sys.stderr)
        return 1
    state_dir.mkdir(parents=True, exist_ok=True)
    if args.foreground:
        from world.system_service import serve

        return serve(settings, state_dir, config_path=args.config, address=address, fresh=args.fresh,
                     ready=lambda line: print(line, flush=True), ship_code=args.ship_code)
    cmd = [sys.executable, "-m", "world.system_service", "--state-dir", str(state_dir)]
    if args.config:
        cmd += ["--config", str(Path(args.config).resolve())]
    if address:
        cmd += ["--address", address]
    if args.fresh:
        cmd.append("--fresh")
    if args.ship_code:
        cmd.append("--ship-code")
    logs = state_dir / "logs"
    logs.mkdir(exist_ok=True)
    log_file = logs / "service.log"
    read_end, write_end = os.pipe()
    cmd += ["--ready-fd", str(write_end)]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    print(f"starting (service pid {proc.pid}, state {state_dir}, log {log_file}) …", flush=True)
    from world.child_process import read_ready_line

    line = read_ready_line(read_end, args.timeout)
    os.close(read_end)
    if line.startswith("ready "):
        info = json.loads(line[len("ready "):])
        what = "resumed" if info.get("resumed") else "started fresh"
        print(f"up ({what} in {info.get('up_in_s')} s): gateway {info.get('gateway_url')}, exchange "
              f"{info.get('exchange_url')}\n  `indexmaker status` shows every part, `indexmaker down` stops it")
        if info.get("exchange_mode") == "paper":
            print(f"  PAPER trading: orders are matched locally on the market data of {info.get('upstream_url')}; "
                  f"nothing is sent to that exchange")
        if settings.environment == "local":
            print("  users: `indexmaker dev-keys` lists the local world's funded keys; then `indexmaker deposit "
                  "1000 --key KEY`, `indexmaker order buy ...`, `indexmaker balance --key KEY`")
        return 0
    if line.startswith("failed "):
        error = json.loads(line[len("failed "):])["error"]
        print(f"start failed: {_last_line(error)}", file=sys.stderr)
    elif not line:
        code = proc.poll()
        print(f"the service ended before it was ready (exit {code})" if code is not None
              else f"not ready after {args.timeout} s: it is still starting (see {log_file})", file=sys.stderr)
    print(f"last lines of {log_file}:\n" + _tail(log_file, 15), file=sys.stderr)
    return 1


def _world_problems(settings, state_dir: Path) -> list[str] | None:  # noqa: ANN001
    """The world checks (world/world_check.py) of the configured world: an external one as configured, the local
    one as its running `up` started it (None, said why, when it is not up)."""
    from core.config import LOCAL_STORE, REPO_ROOT
    from world.secrets import SecretsError, load_into_environ, store_url
    from world.world_check import external_target, local_target, run_checks

    try:
        load_into_environ()
    except SecretsError as exc:
        return [str(exc)]
    if settings.environment != "local":
        redis_url = None if settings.store.url == LOCAL_STORE else store_url(settings.store.url)
        return run_checks(external_target(settings, REPO_ROOT / "config", redis_url))
    from world.run_file import pid_alive, read_run

    run = read_run(state_dir)
    if run is None or run.get("phase") != "up" or not pid_alive(run.get("pid")):
        print(f"the local world is not up in {state_dir}: `indexmaker up` starts it (its checks run on a world "
              f"that is up)", file=sys.stderr)
        return None
    return run_checks(local_target(settings, run))


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1].strip() if lines else text


def _busy_ports(settings) -> list[str]:  # noqa: ANN001
    """The fixed ports the system will listen on that another process holds now (fails fast, with names)."""
    from world.ports import port_is_free

    return [f"ports.{name} = {getattr(settings.ports, name)}" for name in ("gateway", "invoices")
            if not port_is_free(getattr(settings.ports, name))]


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------------- deploy-token
def _deploy_token(args: argparse.Namespace) -> int:
    """Deploy one index token on the configured Base with the operator's admin key; print what the config needs."""
    from web3.exceptions import Web3Exception

    from chain.keys import MNEMONIC_ENV
    from core.config import INDEX_SYMBOL
    from world.secrets import SecretsError, load_into_environ, require
    from world.token_deploy import deploy_token

    settings = _settings(args.config)
    if settings.environment == "local":
        print('the local world deploys its index tokens itself ([indexes.X] token = "deploy"); deploy-token is for '
              'an external world (--config config/testnet.toml)', file=sys.stderr)
        return 2
    if not INDEX_SYMBOL.match(args.symbol):
        print(f"{args.symbol!r} is not an index symbol (1 to 20 of A-Z and 0-9)", file=sys.stderr)
        return 2
    entry = settings.indexes.get(args.symbol)
    name = args.name or (entry.name if entry is not None and entry.name else f"IndexMaker {args.symbol}")
    try:
        load_into_environ()
        (mnemonic,) = require(MNEMONIC_ENV)
        address = deploy_token(settings, args.symbol, name, mnemonic)
    except (SecretsError, RuntimeError) as exc:
        print(f"not deployed: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, Web3Exception) as exc:  # the RPC unreachable, or it refused the transaction
        print(f"not deployed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print(address)
    print(f"  put it in the configuration:\n  [indexes.{args.symbol}]\n  token = {{ base = \"{address}\" }}",
          file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------- down
#: What a world process's command line must contain for `down` to end it after a crash (a pid may be reused).
_ROLE_MARKS = {"redis": "redis-server", "exchange": "world.local_exchange", "anvil-": "anvil",
               "paper-exchange": "world.paper_exchange"}


def _down(args: argparse.Namespace) -> int:
    from world.run_file import pid_alive, read_run, wait_exit

    state_dir = _state_dir(args)
    run = read_run(state_dir)
    if run is None:
        print(f"nothing was started in {state_dir}")
        return 0
    pid = run.get("pid")
    if pid_alive(pid):
        os.kill(int(pid), signal.SIGTERM)
        print(f"stopping (service pid {pid}) …", flush=True)
        if not wait_exit(int(pid), args.timeout):
            print(f"the service did not stop within {args.timeout} s; see {state_dir / 'logs' / 'service.log'}",
                  file=sys.stderr)
            return 1
        print(f"down; the state is kept in {state_dir} (`indexmaker up` resumes it)")
        return 0
    ended = _end_leftovers(state_dir, run)
    print(f"the service was gone; stopped what it left: {', '.join(ended)}" if ended else "not running")
    return 0


def _end_leftovers(state_dir: Path, run: dict) -> list[str]:
    """The service is gone (a crash): end what it left behind — each recorded world process only if its pid still
    runs what it ran then, and the detached actors on a cluster — and mark the run down. Returns what was ended."""
    from world.run_file import pid_alive, pid_cmdline, wait_exit, write_run

    leftovers = []
    for role, ppid in (run.get("processes") or {}).items():
        mark = next((m for r, m in _ROLE_MARKS.items() if role.startswith(r)), None)
        if pid_alive(ppid) and mark and mark in pid_cmdline(ppid):
            os.kill(int(ppid), signal.SIGTERM)  # anvil writes its chain, the exchange its books, on SIGTERM
            leftovers.append((role, ppid))
    for role, ppid in leftovers:
        if not wait_exit(int(ppid), 10):
            os.kill(int(ppid), signal.SIGKILL)
    released = _release_detached(run) if (run.get("ray") or {}).get("detached") else []
    if run.get("phase") != "down":
        write_run(state_dir, phase="down", pid=None, processes={})
    return [r for r, _ in leftovers + released]


def _release_detached(run: dict) -> list[tuple[str, int]]:
    """Detached actors on a cluster outlive a crashed service: end them (their state is in Redis)."""
    try:
        import ray

        r = run["ray"]
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=r["address"], namespace=r["namespace"], log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # noqa: BLE001
        print(f"could not reach Ray at {run.get('ray')} to end its actors: {exc}", file=sys.stderr)
        return []
    ended = []
    try:
        for name in run.get("actors") or []:
            try:
                ray.kill(ray.get_actor(name, namespace=run["ray"]["namespace"]), no_restart=True)
                ended.append((name, 0))
            except ValueError:
                pass
    finally:
        ray.shutdown()
    return ended


# ---------------------------------------------------------------------------------------------------- status
def _status(args: argparse.Namespace) -> int:
    from world.run_file import read_run
    from world.system_status import collect, render

    run = read_run(_state_dir(args))
    status = collect(run, with_inspect=True)
    if args.json:
        print(json.dumps({"run": run, **status.to_dict()}, indent=2, default=str))
    else:
        print("\n".join(render(status, run)))
    return 0 if status.healthy else 1


# ---------------------------------------------------------------------------------------------------- invoice
def _invoice(args: argparse.Namespace, rest: list[str]) -> int:
    """Ask the gateway again for a stored Mint Invoice (GetMintInvoice). The URL: --url, else the running
    system's gateway from the state dir's run file, else the client's default."""
    from protocol.cli import run as client_run
    from world.run_file import read_run

    argv = ["invoice", args.id, *rest]
    if "--url" not in rest:
        run = read_run(_state_dir(args))
        if run and run.get("gateway_url"):
            argv += ["--url", run["gateway_url"]]
    return client_run(argv)


def _running_gateway_url() -> str | None:
    """The gateway of the system running from the default state dir (the config's state_dir), if one is up."""
    from world.run_file import read_run

    try:
        run = read_run(Path(_settings(None).state_dir).expanduser().resolve()) or {}
    except (OSError, ValueError):
        return None
    return run.get("gateway_url") if run.get("phase") == "up" else None


# ---------------------------------------------------------------------------------------------------- compact-store
def _compact_store(args: argparse.Namespace) -> int:
    """Rewrite the store's AOF now (world/redis_server.py says why it is the operator's to schedule). The store:
    --url, else the running system's redis from the state dir's run file."""
    import redis

    from world.redis_server import rewrite_aof
    from world.run_file import read_run

    url = args.url
    if url is None:
        run = read_run(_state_dir(args)) or {}
        from world.secrets import store_url

        url = store_url(run["redis_url"]) if run.get("phase") == "up" and run.get("redis_url") else None
        if url is None:
            print(f"no running system in {_state_dir(args)} (start it with `indexmaker up`, or give --url)",
                  file=sys.stderr)
            return 2
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        done = rewrite_aof(client, args.timeout)
    except (redis.RedisError, RuntimeError, TimeoutError) as exc:
        print(f"compacting the store at {url} failed: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"store compacted: AOF {done['aof_mb_before']} MB -> {done['aof_mb_after']} MB in {done['seconds']} s")
    return 0


# ---------------------------------------------------------------------------------------------------- resume
def _resume(args: argparse.Namespace) -> int:
    """Clear a circuit breaker of the running system's order sender (actors/order_sender.py `resume`): the orders it
    held go out. The system: the state dir's run file, as `status` finds it."""
    from world.run_file import read_run

    if (args.symbol is None) == (not args.account):
        print("name a SYMBOL or give --account (one of them)", file=sys.stderr)
        return 2
    run = read_run(_state_dir(args)) or {}
    if run.get("phase") != "up" or not run.get("ray"):
        print(f"no running system in {_state_dir(args)} (start it with `indexmaker up`)", file=sys.stderr)
        return 2
    import ray

    from actors.order_sender import SENDER_NAME
    from core.circuit_breaker import ACCOUNT, describe, stopped

    r = run["ray"]
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=r.get("address") or "auto", namespace=r.get("namespace"), log_to_driver=False,
             configure_logging=False, logging_level="ERROR")
    try:
        sender = ray.get_actor(SENDER_NAME, namespace=r.get("namespace"))
        answer = ray.get(sender.resume.remote(args.symbol, args.account), timeout=args.timeout)
    except ValueError as exc:  # no such actor, or a symbol the exchange does not trade (the actor's refusal)
        print(f"resume refused: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    what = stopped(ACCOUNT) if args.account else args.symbol
    if answer["cleared"] is None:
        print(f"no circuit breaker was open for {what}")
    else:
        print(f"cleared the circuit breaker for {describe(answer['cleared'])}")
    print(f"{answer['released']} held order(s) released to be sent")
    for trip in answer["open"]:
        print(f"still open: {describe(trip)}")
    return 0


# ---------------------------------------------------------------------------------------------------- users
def _user_signer(args: argparse.Namespace):  # noqa: ANN202
    from protocol.cli import KeyUsageError, load_key
    from protocol.signature import Signer

    try:
        return Signer(load_key(args.key))
    except (KeyUsageError, ValueError) as exc:
        raise SystemExit(f"indexmaker {args.command}: {exc}") from None


def _running(args: argparse.Namespace) -> dict:
    """The running system's run file, or a UserCommandError that says there is none."""
    from world.run_file import read_run
    from world.user_commands import running_system

    return running_system(read_run(_state_dir(args)), _state_dir(args))


def _to_custody(args: argparse.Namespace, amount: str, chain_name: str, asset: str,
                send, follow) -> int:  # noqa: ANN001
    """The deposit commands' path: the amount given, sent from the user's key to custody on `chain_name`
    (`send(chain, custody, key, amount)` -> (tx, block, deposit key)), then followed (`follow(http_url, signer,
    deposit key)`)."""
    from decimal import Decimal, InvalidOperation

    from world import user_commands as uc

    signer = _user_signer(args)
    try:
        value = Decimal(amount)
    except InvalidOperation:
        print(f"indexmaker {args.command}: the amount must be a decimal number, got {amount!r}", file=sys.stderr)
        return 2
    try:
        run = _running(args)
        world = uc.world_of(run)
        chain = world.chain(chain_name)
        custody = world.account("custody").address
        print(f"sending    {value} {asset} from {signer.address} to custody {custody} on {chain.name}")
        tx, block, key = send(chain, custody, signer.private_key_hex, value)
        print(f"mined      tx {tx} in block {block}; waiting for the system's confirmations")
        follow(run["http_url"], signer, key)
    except (uc.UserCommandError, KeyError) as exc:
        print(f"indexmaker {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _deposit(args: argparse.Namespace) -> int:
    """Send USDC from the user's key to custody on the chosen chain and follow it until credited and routed."""
    from world import user_commands as uc

    return _to_custody(args, args.amount, args.chain, "USDC", uc.send_deposit,
                       lambda url, signer, key: uc.follow_deposit(url, signer, key, print, timeout_s=args.timeout,
                                                                  until_routed=not args.no_wait_route))


def _deposit_tokens(args: argparse.Namespace) -> int:
    """Send index tokens from the user's key to custody on Base and wait until they are credited for redemption."""
    from world import user_commands as uc

    return _to_custody(args, args.quantity, "base", args.index,
                       lambda chain, custody, key, q: uc.send_token_deposit(chain, custody, key, args.index, q),
                       lambda url, signer, key: uc.follow_token_deposit(url, signer, key, print,
                                                                        timeout_s=args.timeout))
def _withdraw(args: argparse.Namespace) -> int:
    """Withdraw available USDC to the user's address on Arbitrum over the gateway; print each stage until it ends."""
    import asyncio
    import uuid
    from decimal import Decimal, InvalidOperation

    from world import user_commands as uc

    signer = _user_signer(args)
    try:
        amount = Decimal(args.amount)
        max_fee = None if args.max_fee is None else Decimal(args.max_fee)
    except InvalidOperation:
        print(f"indexmaker withdraw: amounts must be decimal numbers, got {args.amount!r}", file=sys.stderr)
        return 2
    try:
        run = _running(args)
        if not run.get("gateway_url"):
            raise uc.UserCommandError("the run file has no gateway_url")
        arbitrum = uc.world_of(run).chain("arbitrum")
        withdrawal_id = args.id or f"wd-{uuid.uuid4().hex[:16]}"
        print(f"requesting withdrawal {withdrawal_id}: {amount} USDC (fees included) to {args.to or signer.address} "
              f"on {arbitrum.name}")
        asyncio.run(uc.withdraw(run["gateway_url"], signer, arbitrum.chain_id, withdrawal_id, amount,
                                args.to or signer.address, arbitrum.chain_id, max_fee, print,
                                timeout_s=args.timeout))
    except (uc.UserCommandError, KeyError, OSError) as exc:
        print(f"indexmaker withdraw: {exc}", file=sys.stderr)
        return 1
    return 0


def _indexes(args: argparse.Namespace) -> int:
    from world import user_commands as uc

    try:
        indexes = uc.fetch_indexes(_running(args)["http_url"])
    except uc.UserCommandError as exc:
        print(f"indexmaker indexes: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(indexes, indent=2) if args.json else "\n".join(uc.index_lines(indexes, not args.brief)))
    return 0


def _balance(args: argparse.Namespace) -> int:
    from world import user_commands as uc

    signer = _user_signer(args)
    try:
        run = _running(args)
        balance = uc.fetch_balance(run["http_url"], signer)
        tokens = uc.token_balances(uc.world_of(run), signer.address)
    except uc.UserCommandError as exc:
        print(f"indexmaker balance: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**balance, "tokens": {k: str(v) for k, v in tokens.items()}}, indent=2))
    else:
        print("\n".join(uc.balance_lines(balance, tokens)))
    return 0


def _dev_keys(args: argparse.Namespace) -> int:
    from world import user_commands as uc

    try:
        run = _running(args)
        if run.get("environment", "local") != "local":
            print("indexmaker dev-keys: only the local world has dev keys", file=sys.stderr)
            return 2
        keys = uc.dev_keys(uc.world_of(run))
    except uc.UserCommandError as exc:
        print(f"indexmaker dev-keys: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    print("funded users of the local world (anvil's public dev mnemonic: never use these keys elsewhere)")
    for k in keys:
        held = ", ".join(f"{v} USDC on {n.removeprefix('usdc_')}" for n, v in k.items() if n.startswith("usdc_"))
        print(f"  {k['address']}  key {k['key']}  {held}")
    return 0
# ---------------------------------------------------------------------------------------------------- reconcile
def _reconcile(args: argparse.Namespace) -> int:
    """Per asset what the books hold against the exchange account, per index the token's supply against the units
    minted: one table; exit 1 on a difference beyond the tolerance (settings.reserves), 2 when no system runs."""
    from core.reserves import problems, render
    from world.reserves_check import reconcile, system_running
    from world.run_file import read_run

    state_dir = _state_dir(args)
    run = read_run(state_dir)
    if not system_running(run):
        print(f"no running system in {state_dir} (start it with `indexmaker up`)", file=sys.stderr)
        return 2
    settings = _settings(args.config or run.get("config"))
    try:
        rows, reads, seconds = reconcile(run, settings)
    except Exception as exc:  # noqa: BLE001  (a part not answering: no verdict)
        print(f"cannot read the reserves: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    bad = problems(rows)
    if args.json:
        print(json.dumps({"rows": [r.to_dict() for r in rows], "ok": not bad, "reads": reads,
                          "seconds": round(seconds, 3)}))
    else:
        print("\n".join(render(rows)))
        print(f"{reads} read(s) in {seconds:.3f} s: " + ("no difference" if not bad else
                                               "DIFFERENT: " + ", ".join(r.asset for r in rows if not r.ok)))
    return 1 if bad else 0


# ---------------------------------------------------------------------------------------------------- market
def _market(args: argparse.Namespace) -> int:
    """The local world's market regime or a replay (world/market_control.py)."""
    from world import market_control as mc
    from world import user_commands as uc

    try:
        url = mc.simulator_url(_running(args))
        if args.market_action == "replay":
            print(json.dumps(mc.replay(url, args.symbol, Path(args.capture), args.rebase)))
            return 0
        state = mc.set_regime(url, args.name, args.symbols, args.percent, args.drift_bps_per_min)
    except (uc.UserCommandError, mc.MarketControlError) as exc:
        print(f"indexmaker market: {exc}", file=sys.stderr)
        return 1
    print("\n".join(mc.regime_lines(state)))
    return 0


# ---------------------------------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indexmaker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("config", help="check or show a configuration file")
    cfg.add_argument("action", choices=["check", "show"])
    cfg.add_argument("file", nargs="?")
    demo = sub.add_parser("demo", help="the whole flow on the local world: three users, deposits, orders, mints")
    demo.add_argument("--port", type=int, default=None, help="gateway port (default: the configured one)")
    sub.add_parser("order", help="send, cancel or fetch index orders over FIX/JSON (see --help)", add_help=False)
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--state-dir", help="where the system keeps its state (default: the config's state_dir)")
    where.add_argument("--config", help="TOML configuration file (config/local.toml, ...)")
    up = sub.add_parser("up", parents=[where], help="start (or resume) the system; returns once it is up")
    up.add_argument("--address", help="attach to a Ray cluster: auto, host:port or ray://host:10001 "
                                      "(default: the config's ray.address, else a Ray instance of its own)")
    up.add_argument("--fresh", action="store_true", help="wipe the state dir's world and store and start anew")
    up.add_argument("--ship-code", action="store_true", help="with --address: send this checkout to the cluster as "
                                                             "the actors' working_dir (nodes without it)")
    up.add_argument("--foreground", action="store_true", help="run in this terminal until Ctrl-C")
    up.add_argument("--timeout", type=float, default=UP_TIMEOUT_S, help="seconds to wait for ready")
    up.add_argument("--check-only", action="store_true", help="only check the configured world (exchange, key, "
                    "pairs, chains, contracts, secrets), one line per problem; exit 1 if any")
    deploy = sub.add_parser("deploy-token", help="deploy an index token on the configured Base with the operator's "
                            "key (INDEXMAKER_CHAIN_MNEMONIC); prints its address")
    deploy.add_argument("symbol")
    deploy.add_argument("--config", required=True)
    deploy.add_argument("--name", help="the token's name (default: the registry's name of the index)")
    down = sub.add_parser("down", parents=[where], help="stop the system cleanly (its state stays)")
    down.add_argument("--timeout", type=float, default=DOWN_TIMEOUT_S)
    status = sub.add_parser("status", parents=[where], help="every part's state; exit 1 if something is down")
    status.add_argument("--json", action="store_true", help="everything, including each actor's inspect()")
    inv = sub.add_parser("invoice", parents=[where], help="fetch a stored Mint Invoice again (--key, --url: "
                                                          "as `indexmaker order invoice --help`)")
    inv.add_argument("id", help="the client order id")
    compact = sub.add_parser("compact-store", parents=[where],
                             help="rewrite the store's AOF now; run it at a quiet hour (e.g. nightly from cron): "
                                  "Redis rewrites by itself only past 1 GB")
    compact.add_argument("--url", help="the store's redis URL (default: the running system's, from the run file)")
    compact.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the rewrite")
    resume = sub.add_parser("resume", parents=[where], help="clear a circuit breaker of the order sender: a symbol's "
                                                            "(after repeated rejects) or, with --account, the "
                                                            "account's (after an insufficient-balance reject)")
    resume.add_argument("symbol", nargs="?", help="the exchange symbol, e.g. BTCUSDC")
    resume.add_argument("--account", action="store_true", help="clear the account-wide breaker")
    resume.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the sender's answer")
    user_key = argparse.ArgumentParser(add_help=False)
    user_key.add_argument("--key", help="the user's key: env:NAME, file:PATH or hex; default $INDEXMAKER_USER_KEY")
    deposit = sub.add_parser("deposit", parents=[where, user_key],
                             help="send USDC from the user's key to custody and wait until it is credited")
    deposit.add_argument("amount", help="USDC, a decimal string")
    deposit.add_argument("--chain", default="arbitrum", help="arbitrum (bridged to Base) or base (no bridge)")
    deposit.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each stage")
    deposit.add_argument("--no-wait-route", action="store_true", help="stop once credited (the route goes on)")
    deposit_tokens = sub.add_parser("deposit-tokens", parents=[where, user_key],
                                    help="send index tokens from the user's key to custody on Base and wait until "
                                         "they are credited for redemption")
    deposit_tokens.add_argument("index", help="the index symbol, e.g. SY100")
    deposit_tokens.add_argument("quantity", help="index units, a decimal string")
    deposit_tokens.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the credit")
    withdraw = sub.add_parser("withdraw", parents=[where, user_key],
                              help="withdraw available USDC to the user's address on Arbitrum, followed until paid")
    withdraw.add_argument("amount", help="USDC taken from the available collateral, routing fees included")
    withdraw.add_argument("--to", help="the address paid on Arbitrum (default: the key's own)")
    withdraw.add_argument("--id", help="the withdrawal's id (default: a new one); the same id and amount again is "
                               "answered as the first and holds nothing more")
    withdraw.add_argument("--max-fee", help="the most the exchange's withdrawal fee may be, USDC (above it: released)")
    withdraw.add_argument("--timeout", type=float, default=600.0, help="seconds to follow it")
    balance = sub.add_parser("balance", parents=[where, user_key],
                             help="the user's collateral by parts, its deposits, the index tokens it holds and "
                                  "those credited for redemption")
    balance.add_argument("--json", action="store_true")
    listing = sub.add_parser("indexes", parents=[where],
                             help="the indexes the system serves, their assets and live prices per unit")
    listing.add_argument("--brief", action="store_true", help="one line per index, without its assets")
    listing.add_argument("--json", action="store_true")
    keys = sub.add_parser("dev-keys", parents=[where], help="the local world's funded user keys")
    keys.add_argument("--json", action="store_true")
    market = sub.add_parser("market", parents=[where], help="local world only: switch the simulator's market "
                            "regime (calm, volatile, thin, wide, trending; events: gap, halted) or replay a recorded "
                            "depth stream into a pair's book")
    market_sub = market.add_subparsers(dest="market_action", required=True)
    regime = market_sub.add_parser("regime", parents=[where], help="switch the regime (no NAME: show the current)")
    regime.add_argument("name", nargs="?", help="calm | volatile | thin | wide | trending | gap | halted")
    regime.add_argument("--symbols", nargs="+", help="only these pairs (halted needs them; default: every pair)")
    regime.add_argument("--percent", help="gap: the jump in percent (default: the simulator's configured one)")
    regime.add_argument("--drift-bps-per-min", help="trending: the drift (default: the configured one)")
    replay = market_sub.add_parser("replay", parents=[where], help="drive a pair's book with a recorded depth "
                                   "stream (JSON or JSON lines of depthUpdate events), one event per price step")
    replay.add_argument("symbol")
    replay.add_argument("capture", help="the capture file")
    replay.add_argument("--rebase", action="store_true", help="scale the recorded prices to the pair's own level")
    rec = sub.add_parser("reconcile", parents=[where], help="what the books hold against the exchange account and "
                                                            "the index token's supply; exit 1 on a difference")
    rec.add_argument("--json", action="store_true", help="the rows as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "order":  # everything after `order` belongs to the protocol client's own parser
        from protocol.cli import URL_ENV, run

        rest = argv[1:]
        if "--url" not in rest and not os.environ.get(URL_ENV):
            gateway = _running_gateway_url()
            rest += ["--url", gateway] if gateway else []
        return run(rest)
    parser = _parser()
    if argv and argv[0] == "invoice":
        args, rest = parser.parse_known_args(argv)
        return _invoice(args, rest)
    args = parser.parse_args(argv)
    if args.command == "config":
        return _config(args)
    if args.command == "demo":
        from world.demo import main as demo_main

        return demo_main(args.port)
    if args.command == "up":
        return _up(args)
    if args.command == "down":
        return _down(args)
    if args.command == "deploy-token":
        return _deploy_token(args)
    if args.command == "status":
        return _status(args)
    if args.command == "compact-store":
        return _compact_store(args)
    if args.command == "resume":
        return _resume(args)
    if args.command == "deposit":
        return _deposit(args)
    if args.command == "deposit-tokens":
        return _deposit_tokens(args)
    if args.command == "withdraw":
        return _withdraw(args)
    if args.command == "balance":
        return _balance(args)
    if args.command == "indexes":
        return _indexes(args)
    if args.command == "dev-keys":
        return _dev_keys(args)
    if args.command == "reconcile":
        return _reconcile(args)
    if args.command == "market":
        return _market(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
