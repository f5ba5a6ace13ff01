"""Every stored record kind, imported in one place so that the registry (store.records.kinds) is complete."""
from __future__ import annotations

from store import chain_records  # noqa: F401
from store import sender_records  # noqa: F401
from store import shard_records  # noqa: F401
from store import solver_records  # noqa: F401
from store import withdrawal_records  # noqa: F401
