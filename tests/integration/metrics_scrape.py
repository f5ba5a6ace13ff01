"""Reading Ray's metrics export the way Prometheus does: one scrape of the node's endpoint, and a bounded wait for
metric lines to show up there (workers report every metrics_report_interval_ms, 10 s by default)."""
from __future__ import annotations

import re
import time
import urllib.request

import ray


def export_url() -> str:
    """The Prometheus endpoint of the (first alive) node: its metrics agent's MetricsExportPort."""
    node = next(n for n in ray.nodes() if n["Alive"])
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


def series(metric: str, label: str = "", worker: str | None = None) -> str:
    """A regex for one exported line of `ray_indexmaker_{metric}` whose labels contain `label` (and, given a
    worker id, were recorded by that worker); group 1 is the value."""
    who = f'(?=[^}}]*WorkerId="{re.escape(worker)}")' if worker else ""
    return rf'^ray_indexmaker_{metric}\{{{who}(?=[^}}]*{label})[^}}]*\}} (\S+)$'


def scrape_until(url: str, wanted: dict[str, str], deadline: float) -> dict[str, float]:
    """Scrape until every pattern of `wanted` (key -> regex with the value in group 1) matches, or `deadline`
    (time.monotonic()) passes; returns what matched. Polls: the endpoint has no change notification."""
    found: dict[str, float] = {}
    while True:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        for key, pattern in wanted.items():
            m = re.search(pattern, text, re.MULTILINE)
            if m:
                found[key] = float(m.group(1))
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(1.0)  # the scrape interval
