"""A whole local system (world/launcher.py's LocalSystem on the session's Ray instance) after one user's deposit,
order, fills and mint (world/demo.py's flow): the world the system-level tests read."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Iterator

from world.demo import DemoUser, run_demo
from world.launcher import LauncherOptions, LocalSystem


@contextmanager
def one_user_flow(prefix: str, settings: Any = None) -> Iterator[tuple[LocalSystem, DemoUser, dict]]:
    """Start a system in a namespace of its own, run alice's 1,000 USDC deposit and 400 USDC order to its mint;
    yields (system, alice, the demo's result) and stops the system after."""
    s = LocalSystem(LauncherOptions(gateway_port=0, users=1, namespace=f"{prefix}-{uuid.uuid4().hex[:8]}"), settings)
    s.start()
    try:
        lines: list[str] = []
        alice = DemoUser("alice", Decimal("1000"), [("a1", Decimal("400"))])
        try:
            result = asyncio.run(run_demo(s, [alice], out=lines.append))
        except Exception:
            print("\n".join(lines))
            raise
        yield s, alice, result
    finally:
        s.stop()
