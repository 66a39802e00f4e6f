"""Probing an asset: ffprobe's summary (or why it is unreadable) stored, then the auto-job rule."""

from __future__ import annotations

import logging
import uuid

from mpr_catalog.application import messages
from mpr_catalog.application.ports import MediaProber, UnitOfWorkFactory
from mpr_catalog.domain.assets import AssetState, key_refusal
from mpr_catalog.domain.probe import EMPTY_OBJECT, ProbeOutcome, UnreadableMedia, summarize
from mpr_shared.contracts import Message, ProbeStatus
from mpr_shared.media import MediaType
from mpr_shared.presets import Preset

log = logging.getLogger(__name__)


class AssetProber:
    """Probes pending assets of one bucket; ``auto_preset`` asks for a job per probed video."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        prober: MediaProber,
        bucket: str,
        *,
        auto_preset: Preset | None,
    ) -> None:
        self._uow = uow
        self._prober = prober
        self.bucket = bucket
        self._auto_preset = auto_preset

    async def probe(self, asset_id: uuid.UUID) -> ProbeOutcome | None:
        """Probe one pending asset and store the result; None when there is nothing to do."""
        # MediaUnreachable (S3 unreadable now) propagates; the asset stays pending.
        async with self._uow() as uow:
            asset = await uow.assets.get(asset_id)
        if asset is None or not asset.active or asset.probe_status != ProbeStatus.PENDING:
            return None
        outcome = await self._outcome(asset)
        async with self._uow() as uow:
            if not await uow.assets.save_probe(asset, outcome):
                log.info("asset %s changed while probing; its new content is probed next", asset.id)
                return None
            uow.outbox.add(*self._caused(asset, outcome))
            await uow.commit()
        log.info(
            "asset %s (%a) probed: %s%s",
            asset.id,
            asset.key,
            outcome.status.value,
            f", {outcome.duration:g} s" if outcome.duration else f": {outcome.error}",
        )
        return outcome

    async def pending(self) -> list[uuid.UUID]:
        """Assets whose probe has not run yet (e.g. interrupted by a restart)."""
        async with self._uow() as uow:
            return await uow.assets.pending_probes(self.bucket)

    async def _outcome(self, asset: AssetState) -> ProbeOutcome:
        if asset.size == 0:
            return EMPTY_OBJECT
        try:
            raw = await self._prober.probe(asset.bucket, asset.key)
            return ProbeOutcome(ProbeStatus.OK, summary=summarize(raw))
        except UnreadableMedia as exc:
            return ProbeOutcome.failed(str(exc))

    def _caused(self, asset: AssetState, outcome: ProbeOutcome) -> list[Message]:
        caused: list[Message] = [messages.probed(asset, outcome)]
        preset = self._auto_preset
        wants_job = (
            outcome.status is ProbeStatus.OK
            and asset.media_type == MediaType.VIDEO
            and outcome.has_video
            # Rows registered before keys were screened may hold keys CreateJob refuses.
            and key_refusal(asset.key) is None
        )
        if preset is not None and wants_job:
            caused.append(messages.auto_job(asset, preset))
        return caused
