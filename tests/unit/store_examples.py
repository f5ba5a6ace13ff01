"""One realistic value per stored record kind, built by the current code (the fixture test writes and checks them).

Add an entry when you add a kind. When a kind's VERSION goes up, its older fixture stays (it must still load through
the migrations) and the new version gets a fixture of its own."""
from __future__ import annotations

from typing import Callable

from store.records import Record

#: kind -> a function building one value of it as the current code writes it.
EXAMPLES: dict[str, Callable[[], Record]] = {}
