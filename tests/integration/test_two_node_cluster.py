"""`indexmaker up --address` on a real two-node Ray cluster made on this machine, with placement from the config.

Two `ray start` nodes (a head offering the custom resource `head_node`, a second node offering `exchange` on an address
of its own, 127.0.0.2), each in a session of its own, with their own temp dir and ports. The world is the local world
started as an external one (`python -m world.external_local`: the exchange, the chains and a Redis with a password,
each on an address of its own, none 127.0.0.1), and the system's configuration is the one it wrote, with placement
added: the market-data shards and the order sender on `exchange`, everything else on `head_node`. `indexmaker status`
must then show those actors on the second node and the rest on the head; they reach the store and the exchange only
through the configured addresses. One order goes through (deposit, buy, fills, mint, invoice), `indexmaker down` ends
the detached actors (the cluster stays), and the cluster is stopped by ending exactly the processes of its two
sessions — never `ray stop`, which would end every Ray instance on the machine (other sessions run theirs).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.operator_cli import (ROOT, ExternalLocalWorld, buy_to_invoice, cli, credited, explain, status,
                                           transfer, wait_status)
from world.redis_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

RAY = str(Path(sys.executable).parent / "ray")
DEPOSIT = Decimal("500")


def session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])  # field 6: session id
    except (OSError, ValueError, IndexError):
        return None


#: The second node's own address (the world's parts are on 127.0.0.3 and up: [local] external_hosts).
SECOND_NODE_IP = "127.0.0.2"


class TwoNodeCluster:
    """Head on 127.0.0.1 + one more node on SECOND_NODE_IP with its own temp dir and ports. Each `ray start` runs as
    a session leader, so every process it leaves behind (GCS, raylet, agents, and the workers the raylet forks)
    carries that session id: that is how `stop()` finds exactly this cluster's processes."""

    def __init__(self) -> None:
        # Short: Ray's socket paths must stay < 108.
        self.temps = [tempfile.mkdtemp(prefix="imkray-", dir="/tmp") for _ in range(2)]
        self.temp = self.temps[0]
        self.port = free_port()
        self.sessions: list[int] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
        self.env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray_start(self, *args: str, ip: str, temp: str) -> None:
        with open(Path(temp) / "ray-start.log", "ab") as log:
            proc = subprocess.Popen([RAY, "start", *args, "--node-ip-address", ip, "--num-cpus", "1",
                                     "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port(ip)),
                                     "--temp-dir", temp], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.sessions.append(proc.pid)
            code = proc.wait(timeout=240)
        if code != 0:
            raise RuntimeError(f"ray start {args[:2]} failed ({code}):\n" +
                               (Path(temp) / "ray-start.log").read_text()[-3000:])

    def start(self) -> "TwoNodeCluster":
        self._ray_start("--head", "--port", str(self.port), "--include-dashboard=false",
                        "--ray-client-server-port", str(free_port()), "--resources", '{"head_node": 1}',
                        ip="127.0.0.1", temp=self.temps[0])
        ports = {flag: str(free_port(SECOND_NODE_IP)) for flag in (
            "--node-manager-port", "--object-manager-port", "--metrics-export-port", "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port")}
        self._ray_start("--address", self.address, "--resources", '{"exchange": 1}',
                        *(x for flag_port in ports.items() for x in flag_port), ip=SECOND_NODE_IP,
                        temp=self.temps[1])
        return self

    def processes(self) -> list[int]:
        mine = set(self.sessions)
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and session_of(int(p)) in mine]

    def stop(self) -> list[int]:
        """SIGTERM this cluster's processes, SIGKILL what is left after a grace period; returns any survivors."""
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)  # polling /proc: these are not our children, nothing signals their exit to us
        left = self.processes()
        for temp in self.temps:
            shutil.rmtree(temp, ignore_errors=True)
        return left


def ray_query(env: dict[str, str], address: str, code: str) -> object:
    """Run `code` (which prints one JSON value) in a driver attached to the cluster; returns that value."""
    script = f"import json, ray\nray.init(address={address!r}, log_to_driver=False, logging_level='ERROR')\n{code}"
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster():
    c = TwoNodeCluster()
    try:
        yield c.start()
    finally:
        survivors = c.stop()
        assert not survivors, f"cluster processes still running: {survivors}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = ExternalLocalWorld(tmp_path_factory.mktemp("world")).start()
    try:
        yield w
    finally:
        stopped = w.stop()
        assert stopped.returncode == 0, explain(stopped)


def test_actors_placed_on_both_nodes_and_an_order_goes_through(cluster, world, tmp_path) -> None:  # noqa: ANN001
    from chain.deployment import WorldState
    from chain.keys import DEV_MNEMONIC, derive_account

    env = world.system_env("twonode")
    namespace = env["INDEXMAKER_NAMESPACE"]
    config = tmp_path / "cluster.toml"
    config.write_text(Path(world.info["config"]).read_text() + '''
[ray.placement]
"*" = { head_node = 0.01 }
"market-*" = { exchange = 0.01 }
sender = { exchange = 0.01 }
''')
    where = ["--state-dir", str(tmp_path / "state"), "--config", str(config)]
    try:
        r = cli(env, "up", "--address", cluster.address, *where)
        assert r.returncode == 0, explain(r)
        run = json.loads((tmp_path / "state" / "run.json").read_text())
        assert run["ray"]["detached"] is True and run["ray"]["own"] is False
        assert run["redis_url"] == world.info["addresses"]["store"]  # the world's store, not one of the system's
        assert run["exchange_url"] == world.info["addresses"]["exchange_rest"] and run["processes"] == {}

        nodes = ray_query(env, cluster.address, "print(json.dumps({n['NodeID']: [n['NodeManagerAddress'], "
                                                "sorted(n['Resources'])] for n in ray.nodes() if n['Alive']}))")
        (exchange_node,) = [n for n, (_, res) in nodes.items() if "exchange" in res]
        (head_node,) = [n for n, (_, res) in nodes.items() if "head_node" in res]
        assert nodes[exchange_node][0] == SECOND_NODE_IP
        code, report = status(env, where)
        assert code == 0, json.dumps(report, default=str)[:3000]
        placed = {p["name"]: p["ray"]["node_id"] for p in report["parts"] if p["kind"] == "actor"}
        on_exchange = {n for n, node in placed.items() if node == exchange_node}
        assert on_exchange == {"sender"} | {n for n in placed if n.startswith("market-")}, placed
        assert {n for n, node in placed.items() if node == head_node} == set(placed) - on_exchange
        assert {"solver", "gateway", "orders-0", "chain"} <= set(placed) - on_exchange

        # One order through the system spread over both nodes: the sender on 127.0.0.2 reaches the store and the
        # exchange's WebSocket API at the world's addresses.
        world_file = str(world.dir / "world.json")  # the world's own file: its funded users
        user = WorldState.load(world_file).users[1]
        transfer(world_file, user.index, DEPOSIT)
        wait_status(env, where, "deposit credited", credited(user.address, DEPOSIT))
        chain_id = WorldState.load(run["world_file"]).chain("arbitrum").chain_id
        invoice = asyncio.run(buy_to_invoice(run["gateway_url"], derive_account(DEV_MNEMONIC, user.index).key,
                                             chain_id, "N1", "200"))
        assert Decimal(invoice.body.minted_quantity) > 0 and invoice.body.mint_tx
        code, report = status(env, where)
        (sender,) = [p for p in report["parts"] if p["name"] == "sender"]
        assert sender["inspect"]["orders"] > 0, sender["inspect"]  # the basket went out through the sender there

        r = cli(env, "down", *where)
        assert r.returncode == 0, explain(r)
        left = ray_query(env, cluster.address, "print(json.dumps([a['name'] for a in "
                                               f"ray.util.list_named_actors(all_namespaces=True) "
                                               f"if a['namespace'] == {namespace!r}]))")
        assert left == []  # `down` ended the detached actors; the cluster itself is still there
    finally:
        cli(env, "down", *where)
