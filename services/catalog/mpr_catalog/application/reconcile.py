"""The reconcile loop: a full scan every interval, for missed notifications and vanished objects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mpr_catalog.application.probe_queue import ProbeScheduler
from mpr_catalog.application.probing import AssetProber
from mpr_catalog.application.scanning import Scanner, ScanReport

log = logging.getLogger(__name__)


async def reconcile_forever(
    scanner: Scanner,
    prober: AssetProber,
    probes: ProbeScheduler,
    *,
    interval: float,
    on_report: Callable[[ScanReport], None],
) -> None:
    """Scan the whole bucket (marking vanished objects deleted), then queue postponed probes."""
    while True:
        try:
            on_report(await scanner.scan(remove_missing=True))
            probes.submit(await prober.pending())
        except Exception:
            log.exception("reconcile scan failed; trying again in %gs", interval)
        await asyncio.sleep(interval)
