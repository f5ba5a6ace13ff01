"""Calling an actor that is being restarted, from a test."""
from __future__ import annotations

import time

import ray

WAIT_S = 60.0


def call_until_back(method, *args, timeout_s: float = WAIT_S):  # noqa: ANN001, ANN201
    """The restarted actor answers once __init__ has reloaded it (spec/ray.md §6: ~2 s); until then a call fails
    with RayActorError (ActorUnavailableError included), and is made again until the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(method.remote(*args))
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline, f"{method} did not come back in {timeout_s} s"


def wait_restarted(handle, timeout_s: float = WAIT_S) -> dict:  # noqa: ANN001
    """inspect() of the NEW instance after ray.kill(no_restart=False): ray.kill is asynchronous, so calls right
    after it may still be answered by the old one; its `restarted` flag tells them apart."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = call_until_back(handle.inspect, timeout_s=timeout_s)
        if info["restarted"]:
            return info
        assert time.monotonic() < deadline, "the actor was not restarted"


def kill_all(actors) -> None:  # noqa: ANN001
    """A test's actors, killed for good whatever state they are in (the test's cleanup)."""
    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001  (already gone)
            pass
