"""Every stored record kind, imported in one place so that the registry (store.records.kinds) is complete."""
from __future__ import annotations

import store.sender_records  # noqa: F401
import store.chain_records  # noqa: F401
