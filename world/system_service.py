"""The process behind `indexmaker up`: it owns the local world (of an external world, only a "local" store) and the
actors, keeps them running until SIGTERM or SIGINT, then stops everything in order, each part writing its state
into the state dir.

It stays because the world is OS processes and a relayer thread that need an owner to stop them cleanly. On a
cluster (`--address`) the actors are detached and it owns only the local world."""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def launcher_options(settings, state_dir: Path, *, address: str | None, fresh: bool,  # noqa: ANN001, ANN201
                     ship_code: bool = False):
    from world.launcher import LauncherOptions

    return LauncherOptions(state_dir=state_dir, resume=not fresh, address=address, detached=address is not None,
                           ship_code=ship_code,
                           namespace=os.environ.get("INDEXMAKER_NAMESPACE") or settings.ray.namespace)


def _stored_url(settings, url: str) -> str:  # noqa: ANN001
    """The store URL as the run file keeps it: the configured one (its password stays a secret, added again by
    whoever reads it: world.secrets.store_url), or the one of the redis started here."""
    from core.config import LOCAL_STORE

    return url if settings.store.url == LOCAL_STORE else settings.store.url


def serve(settings, state_dir: Path, *, config_path: str | None, address: str | None, fresh: bool,  # noqa: ANN001
          ready: Callable[[str], None] = print, stop: threading.Event | None = None, ship_code: bool = False) -> int:
    """Start, report `ready` (one line), run until `stop` is set (by SIGTERM/SIGINT), stop. Returns the exit code."""
    from world.launcher import LocalSystem
    from world.run_file import write_run
    from world.secrets import load_into_environ

    load_into_environ()  # INDEXMAKER_SECRETS_FILE, if set, fills what the environment does not have
    stop = stop or threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # a signal during the start stops right after it
        signal.signal(sig, on_signal)
    t0 = time.monotonic()
    write_run(state_dir, phase="starting", pid=os.getpid(), config=config_path, environment=settings.environment,
              started_at=time.time(), error=None, processes={}, actors=[])
    system = LocalSystem(launcher_options(settings, state_dir, address=address, fresh=fresh, ship_code=ship_code),
                         settings)
    try:
        system.start()
    except BaseException as exc:  # noqa: BLE001  (reported, then the service ends)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.error("start failed:\n%s", traceback.format_exc())
        write_run(state_dir, phase="failed", error=detail, pid=None)
        ready("failed " + json.dumps({"error": detail}))
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):  # again: ray.init installed its own (it only logs the signal)
        signal.signal(sig, on_signal)
    record = write_run(
        state_dir, phase="up", resumed=system.resumed, gateway_url=system.gateway_url, http_url=system.http_url,
        exchange_url=system.settings.exchange.rest_url, redis_url=_stored_url(settings, system.settings.redis_url),
        world_file=str(system.world_file),
        exchange_mode=settings.exchange.mode, upstream_url=system.upstream.url if system.upstream else None,
        ray={"address": system.ray_address, "namespace": system.namespace, "own": address is None,
             "detached": system.o.detached},
        processes=system.processes(), actors=list(system.actors), indexes=list(system.baskets),
        up_in_s=round(time.monotonic() - t0, 1))
    ready("ready " + json.dumps({k: record[k] for k in ("gateway_url", "exchange_url", "exchange_mode", "upstream_url",
                                                        "resumed", "up_in_s")}))
    try:
        while not stop.wait(1.0):  # woken by the signal handler; the timeout only lets signals in promptly
            pass
    finally:
        write_run(state_dir, phase="stopping")
        try:
            system.stop()
        finally:
            write_run(state_dir, phase="down", pid=None, processes={}, stopped_at=time.time())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m world.system_service", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--config")
    parser.add_argument("--address")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--ship-code", action="store_true")
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import core  # noqa: F401
    from core.config import Settings

    settings = Settings.load(args.config)

    def ready(line: str) -> None:
        print(line, flush=True)
        if args.ready_fd is not None:
            try:
                os.write(args.ready_fd, (line + "\n").encode())
                os.close(args.ready_fd)
            except OSError:  # the `up` command gave up waiting: the log and the run file still tell
                pass
            args.ready_fd = None

    return serve(settings, args.state_dir, config_path=args.config, address=args.address, fresh=args.fresh,
                 ready=ready, ship_code=args.ship_code)


if __name__ == "__main__":
    sys.exit(main())
