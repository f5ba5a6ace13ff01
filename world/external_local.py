"""The local world started on its own, as if it were external: redis-server with a password, two anvil chains with
USDC, the Across SpokePools and the index tokens, the Across relayer and the exchange simulator, each on a loopback
address of its own (`[local] external_hosts`, none of them 127.0.0.1; the simulator's REST API, market streams and
WebSocket API on three). It writes what the operator of a real world is handed: a deployment file, a configuration
naming every part (environment "testnet": nothing here is real money) and a secrets file. `indexmaker up --config
D/config.toml` with `INDEXMAKER_SECRETS_FILE=D/secrets.env` then runs the system against it as against a testnet,
reaching each part only through the configured addresses.

    python -m world.external_local start --dir D [--config FILE]   # returns once the world answers
    python -m world.external_local stop --dir D

`start` leaves a process of its own owning the world (the relayer is a thread; the servers are its children);
`stop` ends it by the pid in D/world-run.json, and it stops its parts."""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RUN_FILE = "world-run.json"
#: What `start` writes in the directory: the configuration, its deployment file, the secrets, the world file (the
#: chains as deployed, with the funded users: what a test's users deposit from).
CONFIG_FILE, DEPLOYMENT_FILE, SECRETS_FILE, WORLD_FILE = "config.toml", "deployment.toml", "secrets.env", "world.json"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0


def deployment_toml(state: Any, environment: str, accounts: dict[str, str]) -> str:
    """A deployment file (chain/deployment_file.py) naming the chains of `state` and the system's `accounts`."""
    lines = ["version = 1", f'environment = "{environment}"']
    for name, chain in state.chains.items():
        lines += [f"[chains.{name}]", f"chain_id = {chain.chain_id}", f'usdc = "{chain.usdc}"',
                  f"usdc_decimals = {chain.usdc_decimals}", f'spoke_pool = "{chain.spoke_pool}"',
                  f'spoke_pool_abi = "{chain.spoke_pool_abi}"', f"start_block = {chain.start_block}"]
    lines += ["[accounts]", *(f'{role} = "{address}"' for role, address in accounts.items())]
    return "\n".join(lines) + "\n"


def inline_table(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + " }"


class ExternalLocalWorld:
    """The world's parts, started on their addresses (`start`) and stopped in reverse (`stop`, safe twice)."""

    def __init__(self, directory: Path, settings: Any) -> None:
        self.dir = Path(directory).resolve()
        self.settings = settings
        self.hosts = settings.local.external_hosts
        self.redis: Any = None
        self.chains: Any = None
        self.relayer: Any = None
        self.exchange: Any = None
        self.state: Any = None
        self.store_password = secrets.token_hex(16)

    @property
    def symbols(self) -> tuple[str, ...]:
        from core.basket import load_indexes

        baskets = load_indexes(self.settings.data_dir / "indexes", self.settings.basket_files())
        return tuple(sorted({a.symbol for b in baskets.values() for a in b.assets}))

    def start(self) -> "ExternalLocalWorld":
        from chain.keys import DEV_MNEMONIC
        from core.config import DEPLOY
        from world.chains import LocalChains, LocalChainsConfig
        from world.local_exchange import LocalExchange, LocalExchangeConfig
        from world.redis_server import RedisServer
        from world.relayer import AcrossRelayer

        s, h = self.settings, self.hosts
        self.dir.mkdir(parents=True, exist_ok=True)
        # The exchange account the system trades: keys of its own, handed over in the secrets file only (the
        # simulator's child process takes them from the environment: house_account()).
        os.environ["INDEXMAKER_EXCHANGE_API_KEY"] = secrets.token_hex(32)
        os.environ["INDEXMAKER_EXCHANGE_SECRET"] = secrets.token_hex(32)
        try:
            self.redis = RedisServer(self.dir / "redis", host=h["store"], password=self.store_password).start()
            self.redis.client().flushall()  # new chains every start: an earlier world's store must not pair with them
            tokens = tuple((index, entry.name or f"IndexMaker {index}") for index, entry in s.indexes.items()
                           if entry.token == DEPLOY)
            self.chains = LocalChains(LocalChainsConfig(users=s.local.users, index_tokens=tokens,
                                                        hosts={"arbitrum": h["arbitrum"], "base": h["base"]}),
                                      state_file=self.dir / WORLD_FILE)
            self.state = self.chains.start()
            self.relayer = AcrossRelayer.from_world(self.state, mnemonic=DEV_MNEMONIC,
                                                    poll_s=s.local.relayer_poll_ms / 1000).start()
            self.exchange = LocalExchange(self.state, LocalExchangeConfig(
                confirmations=s.local.exchange_confirmations, poll_ms=s.local.deposit_poll_ms, symbols=self.symbols,
                update_ms=s.local.price_update_ms, host=h["exchange_rest"], stream_host=h["exchange_streams"],
                ws_api_host=h["exchange_ws_api"])).start()
        except BaseException:
            self.stop()
            raise
        return self

    def write_files(self) -> None:
        """The deployment file, the configuration and the secrets file (mode 600) of the started world."""
        from chain.keys import DEV_MNEMONIC

        s, state = self.settings, self.state
        roles = dict(s.chain.account_indexes)
        accounts = {role: state.account(role).address for role in roles}
        (self.dir / DEPLOYMENT_FILE).write_text(deployment_toml(state, "testnet", accounts))
        arb, base = state.chain("arbitrum"), state.chain("base")
        index_lines = []
        for index, entry in s.indexes.items():
            index_lines += [f"[indexes.{index}]", f'basket = "{entry.basket}"']
            if entry.name:
                index_lines.append(f"name = {json.dumps(entry.name)}")
            if index in base.index_tokens:
                index_lines.append(f"token = {inline_table({'base': base.index_tokens[index]})}")
        (self.dir / CONFIG_FILE).write_text("\n".join([
            "# The local world started as an external one (python -m world.external_local): every part on an address",
            "# of its own. Secrets: INDEXMAKER_SECRETS_FILE=" + str(self.dir / SECRETS_FILE),
            'environment = "testnet"',
            f'state_dir = "{self.dir / "system"}"',
            "[exchange]",
            f'rest_url = "{self.exchange.url}"',
            f'ws_url = "{self.exchange.ws_url}"',
            f'ws_api_url = "{self.exchange.ws_api_url}"',
            "[store]",
            f'url = "{self.redis.url}"  # its password: INDEXMAKER_STORE_PASSWORD',
            "[chain]",
            f'deployment_file = "{self.dir / DEPLOYMENT_FILE}"',
            f"arbitrum_chain_id = {arb.chain_id}",
            f"base_chain_id = {base.chain_id}",
            f'arbitrum_rpc = "{arb.rpc_url}"',
            f'base_rpc = "{base.rpc_url}"',
            f"account_indexes = {inline_table(roles)}",
            "# anvil mines a block per transaction: a deposit is final once mined (the listener still checks reorgs)",
            f"confirmations = {s.local.confirmations}",
            f"base_confirmations = {s.local.confirmations}",
            f"receipt_poll_ms = {s.local.receipt_poll_ms}",
            f"[gateway]\nallowed_chain_ids = [{arb.chain_id}, {base.chain_id}]",
            *index_lines,
        ]) + "\n")
        secret_values = {
            "INDEXMAKER_EXCHANGE_API_KEY": os.environ["INDEXMAKER_EXCHANGE_API_KEY"],
            "INDEXMAKER_EXCHANGE_SECRET": os.environ["INDEXMAKER_EXCHANGE_SECRET"],
            "INDEXMAKER_CHAIN_MNEMONIC": DEV_MNEMONIC,  # the mnemonic the chains were deployed and funded from
            "INDEXMAKER_GATEWAY_KEY": "0x" + secrets.token_hex(32),
            "INDEXMAKER_STORE_PASSWORD": self.store_password,
        }
        path = self.dir / SECRETS_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in secret_values.items()))
        os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT: made private here

    def addresses(self) -> dict[str, str]:
        """Each part's URL (never the password)."""
        return {"exchange_rest": self.exchange.url, "exchange_streams": self.exchange.ws_url,
                "exchange_ws_api": self.exchange.ws_api_url, "arbitrum": self.state.chain("arbitrum").rpc_url,
                "base": self.state.chain("base").rpc_url, "store": self.redis.url}

    def stop(self) -> None:
        from world.child_process import stop_parts

        stop_parts(self.exchange, self.relayer, self.chains, self.redis)
        self.exchange = self.relayer = self.chains = self.redis = None


def serve(directory: Path, config: str | None, ready: Callable[[str], None]) -> int:
    """Start the world, write the run file, report `ready` (one line), run until SIGTERM/SIGINT, stop."""
    import core  # noqa: F401  (decimal context)
    from core.config import Settings
    from world.launcher import _write_json

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    world = ExternalLocalWorld(directory, Settings.load(config))
    try:
        world.start()
        world.write_files()
    except BaseException as exc:  # noqa: BLE001  (reported to `start`, which prints it)
        world.stop()
        ready("failed " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise
    try:
        info = {"pid": os.getpid(), "config": str(world.dir / CONFIG_FILE),
                "secrets_file": str(world.dir / SECRETS_FILE), "addresses": world.addresses()}
        _write_json(world.dir / RUN_FILE, info)
        ready("ready " + json.dumps(info))
        stop.wait()
    finally:
        world.stop()
        (world.dir / RUN_FILE).unlink(missing_ok=True)
    return 0


def start(directory: Path, config: str | None, timeout_s: float = START_TIMEOUT_S) -> int:
    from world.child_process import read_ready_line
    from world.run_file import pid_alive

    directory = Path(directory).resolve()
    if directory == ROOT or ROOT in directory.parents:
        print(f"--dir {directory} is inside the repository: the world writes a secrets file there, which `up` would "
              f"refuse; choose a directory outside {ROOT}", file=sys.stderr)
        return 2
    running = _read_run(directory)
    if running and pid_alive(running.get("pid")):
        print(f"already running (pid {running['pid']}): {running['config']}")
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    cmd = [sys.executable, "-m", "world.external_local", "serve", "--dir", str(directory),
           "--ready-fd", str(write_end)] + (["--config", str(Path(config).resolve())] if config else [])
    with open(directory / "world.log", "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_end,), start_new_session=True)
    os.close(write_end)
    line = read_ready_line(read_end, timeout_s)
    os.close(read_end)
    if line.startswith("ready "):
        info = json.loads(line[len("ready "):])
        print(f"world up (pid {info['pid']}):", *(f"  {k}: {v}" for k, v in info["addresses"].items()),
              f"then: INDEXMAKER_SECRETS_FILE={info['secrets_file']} indexmaker up --config {info['config']}",
              sep="\n")
        return 0
    if line.startswith("failed "):
        print(f"the world did not start: {json.loads(line[len('failed '):])['error']}", file=sys.stderr)
    else:
        print(f"the world was not ready within {timeout_s:.0f} s (exit {proc.poll()}); see {directory / 'world.log'}",
              file=sys.stderr)
        if proc.poll() is None:
            proc.terminate()  # it stops its parts on SIGTERM
    return 1


def stop(directory: Path, timeout_s: float = STOP_TIMEOUT_S) -> int:
    from world.run_file import pid_alive, wait_exit

    running = _read_run(Path(directory).resolve())
    if not running or not pid_alive(running.get("pid")):
        print(f"no world running in {directory}")
        return 0
    os.kill(int(running["pid"]), signal.SIGTERM)
    if not wait_exit(int(running["pid"]), timeout_s):
        print(f"the world (pid {running['pid']}) did not stop within {timeout_s:.0f} s", file=sys.stderr)
        return 1
    print("world stopped")
    return 0


def _read_run(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / RUN_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m world.external_local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, required=True, help="where the world keeps its files")
        if name != "stop":
            p.add_argument("--config", help="the configuration whose indexes and [local] settings the world serves")
    sub.choices["serve"].add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        return start(args.dir, args.config)
    if args.command == "stop":
        return stop(args.dir)

    def ready(line: str) -> None:
        print(line, flush=True)
        os.write(args.ready_fd, (line + "\n").encode())
        os.close(args.ready_fd)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args.dir, args.config, ready)


if __name__ == "__main__":
    sys.exit(main())
