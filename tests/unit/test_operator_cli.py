"""The operator commands' bookkeeping, without starting a system: the run file, `status` when nothing or only a
crashed remnant is there, `down` after a crash (ends the world processes the service left, and nothing else), the
status line of each actor, `invoice` finding the gateway of the running system."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli
from world.run_file import pid_alive, read_run, wait_exit, write_run
from world.system_status import collect, key_figures, render


def sleeper(*marks: str) -> subprocess.Popen:
    """A process that sleeps, with `marks` in its command line (what `down` checks before it ends a pid)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *marks])


def crashed_run(state_dir: Path, processes: dict[str, int]) -> None:
    """A run file left by a service that died while up, naming these world processes."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(state_dir, phase="up", pid=dead.pid, ray={"detached": False}, processes=processes)


def test_the_run_file_merges_and_refuses_unknown_phases(tmp_path: Path) -> None:
    write_run(tmp_path, phase="starting", pid=123, processes={})
    record = write_run(tmp_path, phase="up", gateway_url="ws://x")
    assert (record["phase"], record["pid"], record["gateway_url"]) == ("up", 123, "ws://x")
    assert read_run(tmp_path) == record
    with pytest.raises(ValueError, match="unknown phase"):
        write_run(tmp_path, phase="sleeping")
    assert read_run(tmp_path / "elsewhere") is None


def test_pid_alive_and_wait_exit_follow_a_real_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    assert pid_alive(proc.pid)
    assert not wait_exit(proc.pid, 0.2)  # still running
    proc.stdin.close()  # it exits on EOF
    assert wait_exit(proc.pid, 30)
    proc.wait()
    assert not pid_alive(proc.pid)


def test_status_of_nothing_and_of_a_dead_service(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert not collect(None).healthy
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "never started" in capsys.readouterr().out
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(tmp_path, phase="up", pid=dead.pid, processes={}, actors=["solver"], ray={"address": "x"})
    status = collect(read_run(tmp_path))
    assert not status.healthy and "service (pid" in status.phase and "is gone" in status.phase
    assert cli.main(["status", "--state-dir", str(tmp_path)]) == 1
    assert "DOWN service" in capsys.readouterr().out


def test_down_after_a_crash_ends_the_world_it_left_and_nothing_else(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    exchange = sleeper("-m", "world.local_exchange")
    stranger = sleeper("unrelated")  # a recorded pid now running something else (reused): left alone
    try:
        crashed_run(tmp_path, {"exchange": exchange.pid, "redis": stranger.pid})
        assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
        assert "stopped what it left: exchange" in capsys.readouterr().out
        assert exchange.wait(30) is not None
        assert stranger.poll() is None
        assert read_run(tmp_path)["phase"] == "down"
        assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0  # twice: nothing to do
        assert "not running" in capsys.readouterr().out
    finally:
        for p in (exchange, stranger):
            p.kill()
            p.wait()


def test_down_of_a_running_service_sends_sigterm_and_waits(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    service = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
                                "print('ready', flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    assert service.stdout.readline().strip() == "ready"  # its handler is installed
    write_run(tmp_path, phase="up", pid=service.pid, processes={})
    t0 = time.monotonic()
    assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
    assert service.wait(5) == 0 and time.monotonic() - t0 < 30
    assert "state is kept" in capsys.readouterr().out


def test_nothing_started_means_nothing_to_stop(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing was started" in capsys.readouterr().out


def test_up_checks_an_external_world_before_it_starts_anything(tmp_path: Path, monkeypatch,  # noqa: ANN001
                                                                capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    checked: list[object] = []
    monkeypatch.setattr("world.world_check.run_checks",
                        lambda target: checked.append(target) or ["chain base: RPC x unreachable (refused)"])
    state = tmp_path / "state"
    assert cli.main(["up", "--config", str(root / "config" / "live.toml"), "--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert "chain base: RPC x unreachable (refused)" in err and "nothing started" in err
    assert checked[0].settings.environment == "live" and not state.exists()  # nothing started, nothing written


def test_up_check_only_on_a_local_world_that_is_not_up_says_so(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert cli.main(["up", "--check-only", "--state-dir", str(tmp_path)]) == 1
    assert "the local world is not up" in capsys.readouterr().err


def test_invoice_goes_to_the_running_systems_gateway(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    seen: list[list[str]] = []
    monkeypatch.setattr("protocol.cli.run", lambda argv: seen.append(argv) or 0)
    write_run(tmp_path, phase="up", gateway_url="ws://127.0.0.1:9999/ws")
    assert cli.main(["invoice", "C-7", "--state-dir", str(tmp_path), "--key", "env:K"]) == 0
    assert cli.main(["invoice", "C-8", "--state-dir", str(tmp_path), "--url", "ws://other/ws"]) == 0
    assert seen == [["invoice", "C-7", "--key", "env:K", "--url", "ws://127.0.0.1:9999/ws"],
                    ["invoice", "C-8", "--url", "ws://other/ws"]]


@pytest.mark.parametrize("name, info, expect, warns", [
    ("market-0", {"symbols": 3, "ready": 2, "running": True, "stale": ["X"]}, "2/3 symbols ready", 1),
    ("solver", {"counts": {"batches": 4, "asset_orders": 12}, "batches_in_flight": {"b": {}}, "mints_owed": [],
                "outbox": [], "errors": ["boom"]}, "4 batches, 12 asset orders, 1 in flight", 1),
    ("sender", {"orders": 12, "by_status": {"FILLED": 12}, "in_flight": 0, "queued": 0, "log_seq": 30},
     "12 exchange orders", 0),
    ("something-new", {"counts": {"a": 1}}, '"a": 1', 0),
    ("monitor", {"polls": 3, "healthy": True, "reserves": {"problems": ["reserves: BTC books 1 exchange 0.9 "
                                                                        "difference -0.1"]}}, "3 polls", 1),
])
def test_key_figures(name: str, info: dict, expect: str, warns: int) -> None:
    line, warnings = key_figures(name, info)
    assert expect in line and len(warnings) == warns


def test_reconcile_without_a_running_system_exits_2(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert cli.main(["reconcile", "--state-dir", str(tmp_path)]) == 2
    assert "no running system" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run(tmp_path, phase="up", pid=dead.pid, processes={}, actors=["solver"], ray={"address": "x"})
    assert cli.main(["reconcile", "--state-dir", str(tmp_path)]) == 2
    write_run(tmp_path, phase="down", pid=None)
    assert cli.main(["reconcile", "--state-dir", str(tmp_path), "--json"]) == 2


def test_status_names_an_open_circuit_breaker_and_what_it_holds() -> None:
    trip = {"key": "BTCUSDC", "scope": "symbol", "reason": "CONSECUTIVE_REJECTS", "detail": "-2010: Order rejected",
            "since_ms": 1_700_000_000_000, "rejects": 3}
    line, warnings = key_figures("sender", {"orders": 3, "by_status": {}, "breakers": [trip],
                                            "held": {"BTCUSDC": 2}})
    assert line.startswith("DEGRADED (sending stopped for BTCUSDC), 3 exchange orders")
    assert warnings == ["circuit breaker open for BTCUSDC: CONSECUTIVE_REJECTS since 2023-11-14 22:13:20 UTC "
                        "(-2010: Order rejected): sending stopped there until `indexmaker resume` or the cool-off",
                        "orders held by the breakers: {'BTCUSDC': 2}"]
    account = dict(trip, key="*", scope="account", reason="INSUFFICIENT_BALANCE")
    assert key_figures("sender", {"orders": 3, "breakers": [account], "held": {}})[0].startswith(
        "DEGRADED (sending stopped for the whole account)")
    line, warnings = key_figures("sender", {"orders": 3, "breakers": [], "held": {}})
    assert warnings == [] and line.startswith("3 exchange orders")


def test_resume_needs_a_symbol_or_the_account_and_a_running_system(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert cli.main(["resume", "--state-dir", str(tmp_path)]) == 2
    assert "name a SYMBOL or give --account" in capsys.readouterr().err
    assert cli.main(["resume", "BTCUSDC", "--account", "--state-dir", str(tmp_path)]) == 2
    assert cli.main(["resume", "BTCUSDC", "--state-dir", str(tmp_path)]) == 2
    assert "no running system" in capsys.readouterr().err


def test_render_marks_down_parts() -> None:
    from world.system_status import PartStatus, SystemStatus

    status = SystemStatus("up", [PartStatus("solver", "actor", False, "state DEAD",
                                            ray={"state": "DEAD", "restarts": 3, "node_id": "ab" * 28, "pid": 9})])
    lines = render(status, {"environment": "local", "ray": {}})
    assert any(line.strip().startswith("DOWN solver") and "restarts 3" in line for line in lines)
    assert lines[-1].startswith("NOT healthy")
    up = SystemStatus("up", [PartStatus("monitor", "actor", True, "3 polls", warnings=["reserves: BTC ..."])])
    assert render(up, {"environment": "local", "ray": {}})[-1] == "every part up; 1 warning(s) above, marked !"
    assert render(SystemStatus("up", [PartStatus("monitor", "actor", True, "3 polls")]), {"ray": {}})[-1] == "healthy"


def _ping_server():  # noqa: ANN202
    """A tiny exchange that answers /api/v3/ping and counts the pings it got."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.server.pings += 1  # type: ignore[attr-defined]
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.pings = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_status_says_paper_and_checks_both_exchanges() -> None:
    from world.system_status import PartStatus, SystemStatus

    (paper_srv, paper_url), (up_srv, up_url) = _ping_server(), _ping_server()
    run = {"environment": "local", "ray": {}, "exchange_mode": "paper", "exchange_url": paper_url,
           "upstream_url": up_url}
    up = SystemStatus("up", [PartStatus("monitor", "actor", True, "3 polls")])
    assert render(up, run)[1] == (f"  PAPER trading: orders are matched by the paper exchange {paper_url} on the "
                                  f"market data of {up_url}; nothing is sent to that exchange")
    assert not any("PAPER" in line for line in render(up, {"environment": "local", "ray": {}}))
    # Each exchange process is asked at its own address: the upstream at upstream_url, the paper one at exchange_url.
    a, b = sleeper("-m", "world.local_exchange"), sleeper("-m", "world.paper_exchange")
    try:
        parts = {p.name: p for p in collect({**run, "phase": "down", "processes": {"exchange": a.pid,
                                                                                    "paper-exchange": b.pid}}).parts}
        assert parts["exchange"].up and parts["exchange"].detail == f"pid {a.pid}, {up_url}"
        assert parts["paper-exchange"].up and parts["paper-exchange"].detail == f"pid {b.pid}, {paper_url}"
        assert (up_srv.pings, paper_srv.pings) == (1, 1)
    finally:
        for p in (a, b):
            p.kill()
            p.wait()
        paper_srv.shutdown()
        up_srv.shutdown()


def test_down_after_a_crash_ends_the_paper_exchange_too(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    upstream, paper = sleeper("-m", "world.local_exchange"), sleeper("-m", "world.paper_exchange")
    try:
        crashed_run(tmp_path, {"exchange": upstream.pid, "paper-exchange": paper.pid})
        assert cli.main(["down", "--state-dir", str(tmp_path)]) == 0
        assert "stopped what it left: exchange, paper-exchange" in capsys.readouterr().out
        assert upstream.wait(30) is not None and paper.wait(30) is not None
    finally:
        for p in (upstream, paper):
            if p.poll() is None:
                p.kill()
                p.wait()
