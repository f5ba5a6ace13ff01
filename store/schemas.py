"""Every stored record kind, imported in one place so that the registry (store.records.kinds) is complete."""
from __future__ import annotations
