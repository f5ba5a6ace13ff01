"""Which market-data shard owns which symbol.

A symbol's shard depends on the symbol and the shard count only (a stable hash, not the position in some list):
the solver, the launcher and a restarted shard all compute the same owner without sharing the symbol set, and
adding a symbol to a basket never moves the others. Python's `hash()` is salted per process, so the hash is
BLAKE2b of the name.
"""
from __future__ import annotations

import hashlib
from typing import Iterable


def shard_name(k: int) -> str:
    """The Ray actor name of shard k."""
    return f"market-{k}"


def shard_of(symbol: str, shards: int) -> int:
    if shards < 1:
        raise ValueError(f"need at least one shard, got {shards}")
    digest = hashlib.blake2b(symbol.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def assign_shards(symbols: Iterable[str], shards: int) -> list[list[str]]:
    """Each shard's symbols, sorted; every symbol exactly once (duplicates in the input are merged)."""
    out: list[list[str]] = [[] for _ in range(shards)]
    for symbol in sorted(set(symbols)):
        out[shard_of(symbol, shards)].append(symbol)
    return out
