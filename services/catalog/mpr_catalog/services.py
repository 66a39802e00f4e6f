"""The catalog's use cases: scan a bucket, apply a bucket notification, probe an asset.

Each takes its collaborators through ports, runs one transaction per page or message and
writes the events it causes into the same transaction (the outbox).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mpr_catalog.domain import (
    ACTIVE,
    DELETED,
    Action,
    AssetState,
    Decision,
    Notification,
    ObjectChange,
    ObjectInfo,
    decide,
    media_type_of,
    plan_page,
)
from mpr_catalog.ports import (
    AssetChange,
    MediaProber,
    NewAsset,
    ObjectLister,
    ProbeQueue,
    UnitOfWork,
    UnitOfWorkFactory,
)
from mpr_catalog.probe import ProbeFailed, ProbeOutcome, summarize
from mpr_shared.contracts import (
    AssetProbed,
    AssetRegistered,
    AssetRemoved,
    AssetUpdated,
    CreateJob,
    JobSpec,
    Message,
    ProbeStatus,
    ScanResult,
)
from mpr_shared.keys import is_valid_key
from mpr_shared.media import MediaType
from mpr_shared.presets import get_preset

log = logging.getLogger(__name__)

# Compare-and-set retries when another writer changed the same asset in between.
_CAS_ATTEMPTS = 5


class ConcurrentChange(RuntimeError):
    """The asset kept changing under us; the message is better retried than applied."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class _NoProbes:
    def submit(self, asset_ids: Iterable[uuid.UUID]) -> None:
        pass


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """What one notification record did."""

    change: ObjectChange
    decision: Decision
    asset_id: uuid.UUID | None = None


@dataclass(slots=True)
class ScanTotals:
    found: int = 0
    registered: int = 0
    skipped: int = 0
    updated: int = 0
    removed: int = 0
    files: list[str] = field(default_factory=list)

    def result(self) -> ScanResult:
        return ScanResult(
            found=self.found,
            registered=self.registered,
            skipped=self.skipped,
            updated=self.updated,
            files=self.files,
        )


@dataclass
class Catalog:
    """The catalog of one input bucket."""

    uow: UnitOfWorkFactory
    lister: ObjectLister
    prober: MediaProber
    bucket: str
    probes: ProbeQueue = field(default_factory=_NoProbes)
    auto_preset: str | None = None
    batch_size: int = 1000

    # ------------------------------------------------------------------ scan

    async def scan(
        self,
        prefix: str = "",
        *,
        remove_missing: bool = False,
        envelope: dict[str, Any] | None = None,
    ) -> ScanResult:
        """Register new and changed objects under ``prefix``, a page per transaction."""
        # remove_missing (full scans only) then marks assets whose object is gone.
        started = utcnow()
        totals = ScanTotals()
        seen: set[str] | None = set() if remove_missing and not prefix else None
        async for page in self.lister.pages(self.bucket, prefix, self.batch_size):
            if seen is not None:
                seen.update(obj.key for obj in page)
            to_probe = await self._register_page(page, started, totals, envelope or {})
            self.probes.submit(to_probe)
        if seen is not None:
            totals.removed = await self._remove_missing(seen, started, envelope or {})
        log.info(
            "scan of %s/%s: found %d, registered %d, updated %d, skipped %d, removed %d",
            self.bucket,
            prefix,
            totals.found,
            totals.registered,
            totals.updated,
            totals.skipped,
            totals.removed,
        )
        return totals.result()

    async def _register_page(
        self,
        page: Sequence[ObjectInfo],
        started: datetime,
        totals: ScanTotals,
        envelope: dict[str, Any],
    ) -> list[uuid.UUID]:
        page = [obj for obj in page if media_type_of(obj.key) is not None]
        totals.found += len(page)
        async with self.uow() as uow:
            known = await uow.assets.find(self.bucket, [obj.key for obj in page])
            plan = plan_page(page, known, started)
            new = [self._new_asset(obj) for obj in plan.new]
            inserted = await uow.assets.insert(new)
            new = [asset for asset in new if asset.key in inserted]
            renewed = plan.reactivated + plan.changed
            applied = await uow.assets.apply([_content_change(a, obj) for a, obj in renewed])
            reactivated = [(a, o) for a, o in plan.reactivated if a.id in applied]
            changed = [(a, o) for a, o in plan.changed if a.id in applied]
            messages: list[Message] = [_registered(asset, envelope) for asset in new]
            messages += [_registered(_renewed(a, o), envelope) for a, o in reactivated]
            messages += [_updated(a, o, envelope) for a, o in changed]
            await uow.emit(messages)
            await uow.commit()
        totals.registered += len(new) + len(reactivated)
        totals.updated += len(changed)
        totals.skipped += len(page) - len(new) - len(reactivated) - len(changed)
        totals.files += [a.key for a in new] + [a.key for a, _ in reactivated]
        return [a.id for a in new] + [a.id for a, _ in reactivated + changed]

    async def _remove_missing(
        self, seen: set[str], started: datetime, envelope: dict[str, Any]
    ) -> int:
        async with self.uow() as uow:
            candidates = await uow.assets.active_before(self.bucket, started)
        missing = [asset for asset in candidates if asset.key not in seen]
        removed = 0
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            async with self.uow() as uow:
                now = utcnow()
                applied = await uow.assets.apply([_removal(a, a.sequencer, now) for a in batch])
                await uow.emit(_removed(a, envelope) for a in batch if a.id in applied)
                await uow.commit()
            removed += len(applied)
        return removed

    def _new_asset(self, obj: ObjectInfo, **fields: Any) -> NewAsset:
        return NewAsset(
            id=uuid.uuid4(),
            bucket=self.bucket,
            key=obj.key,
            media_type=str(media_type_of(obj.key)),
            size=obj.size,
            etag=obj.etag,
            **fields,
        )

    # ------------------------------------------------------------------ notifications

    async def apply_notification(self, notification: Notification) -> list[AppliedChange]:
        """Apply every record of one notification in one transaction."""
        results: list[AppliedChange] = []
        to_probe: list[uuid.UUID] = []
        async with self.uow() as uow:
            for change in notification.changes:
                if change.bucket != self.bucket:
                    result = AppliedChange(change, Decision(Action.IGNORE, "other bucket"))
                elif media_type_of(change.key) is None:
                    result = AppliedChange(change, Decision(Action.IGNORE, "unsupported type"))
                else:
                    result = await self._apply_change(uow, change)
                if result.decision.action in _PROBED and result.asset_id:
                    to_probe.append(result.asset_id)
                results.append(result)
            await uow.commit()
        self.probes.submit(to_probe)
        return results

    async def _apply_change(self, uow: UnitOfWork, change: ObjectChange) -> AppliedChange:
        for _ in range(_CAS_ATTEMPTS):
            current = (await uow.assets.find(self.bucket, [change.key])).get(change.key)
            decision = decide(change, current)
            asset_id = await self._carry_out(uow, change, decision, current)
            if asset_id is not None or decision.action is Action.IGNORE:
                return AppliedChange(change, decision, asset_id)
        raise ConcurrentChange(f"asset {self.bucket}/{change.key} kept changing; giving up")

    async def _carry_out(
        self,
        uow: UnitOfWork,
        change: ObjectChange,
        decision: Decision,
        current: AssetState | None,
    ) -> uuid.UUID | None:
        """Write the decision; returns the asset id, or None when a concurrent write won."""
        action, seq, now = decision.action, change.sequencer, utcnow()
        if action is Action.IGNORE:
            return current.id if current else None
        if action in (Action.REGISTER, Action.TOMBSTONE):
            gone = action is Action.TOMBSTONE
            asset = self._new_asset(
                ObjectInfo(change.key, 0, "") if gone else change.object,
                sequencer=seq,
                status=DELETED if gone else ACTIVE,
                deleted_at=now if gone else None,
            )
            if not await uow.assets.insert([asset]):
                return None
            if not gone:
                await uow.emit([_registered(asset, _for_asset(asset.id))])
            return asset.id
        assert current is not None
        if action is Action.REMOVE:
            chg = _removal(current, seq, now)
        elif action is Action.TOUCH:
            chg = _touch(current, seq)
        else:
            chg = _content_change(current, change.object, seq)
        if current.id not in await uow.assets.apply([chg]):
            return None
        envelope = _for_asset(current.id)
        if action is Action.REMOVE:
            await uow.emit([_removed(current, envelope)])
        elif action is Action.REACTIVATE:
            await uow.emit([_registered(_renewed(current, change.object), envelope)])
        elif action is Action.UPDATE:
            await uow.emit([_updated(current, change.object, envelope)])
        return current.id

    # ------------------------------------------------------------------ probe

    async def probe(self, asset_id: uuid.UUID) -> ProbeOutcome | None:
        """Probe one pending asset and store the result; None when there is nothing to do."""
        # ProbeUnavailable (S3 unreadable now) propagates; the asset stays pending.
        async with self.uow() as uow:
            asset = await uow.assets.get(asset_id)
        if asset is None or not asset.active or asset.probe_status != ProbeStatus.PENDING:
            return None
        if asset.size == 0:
            outcome = ProbeOutcome.failed("object is empty (0 bytes)")
        else:
            try:
                raw = await self.prober.probe(asset.bucket, asset.key)
                outcome = ProbeOutcome(ProbeStatus.OK, summary=summarize(raw))
            except ProbeFailed as exc:
                outcome = ProbeOutcome.failed(str(exc))
        async with self.uow() as uow:
            if not await uow.assets.save_probe(asset, outcome):
                log.info("asset %s changed while probing; its new content is probed next", asset.id)
                return None
            await uow.emit(self._after_probe(asset, outcome))
            await uow.commit()
        log.info(
            "asset %s (%s) probed: %s%s",
            asset.id,
            asset.key,
            outcome.status.value,
            f", {outcome.duration:g} s" if outcome.duration else f": {outcome.error}",
        )
        return outcome

    def _after_probe(self, asset: AssetState, outcome: ProbeOutcome) -> list[Message]:
        envelope = _for_asset(asset.id)
        messages: list[Message] = [
            AssetProbed(
                **envelope,
                asset_id=asset.id,
                key=asset.key,
                probe_status=outcome.status,
                duration_seconds=outcome.duration,
                error=outcome.error,
            )
        ]
        wants_job = (
            self.auto_preset
            and outcome.status is ProbeStatus.OK
            and asset.media_type == MediaType.VIDEO
            and outcome.has_video
            and is_valid_key(asset.key)  # CreateJob refuses keys with hidden characters
        )
        if wants_job:
            preset = get_preset(self.auto_preset)
            messages.append(
                CreateJob(
                    **envelope,
                    source_bucket=asset.bucket,
                    source_key=asset.key,
                    asset_id=asset.id,
                    spec=JobSpec(kind=preset.kind, preset=preset.name),
                    idempotency_key=f"auto:{asset.id}:{asset.etag}:{preset.name}",
                    requested_by="catalog:auto-transcode",
                )
            )
        return messages

    async def pending_probes(self) -> list[uuid.UUID]:
        """Assets whose probe has not run yet (e.g. interrupted by a restart)."""
        async with self.uow() as uow:
            return await uow.assets.pending_probes(self.bucket)


_PROBED = frozenset({Action.REGISTER, Action.REACTIVATE, Action.UPDATE})


def _touch(asset: AssetState, sequencer: str) -> AssetChange:
    """Same content (or still gone): only the sequencer moves forward."""
    return AssetChange(asset, asset.size, asset.etag, asset.status, sequencer, asset.deleted_at)


def _content_change(
    asset: AssetState, obj: ObjectInfo, sequencer: str | None = None
) -> AssetChange:
    """New content under a known key (changed or back again): active, probe again."""
    return AssetChange(
        asset, obj.size, obj.etag, ACTIVE, sequencer or asset.sequencer, None, reprobe=True
    )


def _removal(asset: AssetState, sequencer: str | None, at: datetime) -> AssetChange:
    return AssetChange(asset, asset.size, asset.etag, DELETED, sequencer, at)


def _renewed(asset: AssetState, obj: ObjectInfo) -> NewAsset:
    return NewAsset(asset.id, asset.bucket, asset.key, asset.media_type, obj.size, obj.etag)


def _for_asset(asset_id: uuid.UUID) -> dict[str, Any]:
    """Envelope of messages about one asset: the asset id correlates its flow."""
    return {"correlation_id": str(asset_id)}


def _registered(asset: NewAsset, envelope: dict[str, Any]) -> AssetRegistered:
    return AssetRegistered(
        **envelope,
        asset_id=asset.id,
        bucket=asset.bucket,
        key=asset.key,
        size_bytes=asset.size,
        etag=asset.etag,
        media_type=asset.media_type,
    )


def _updated(asset: AssetState, obj: ObjectInfo, envelope: dict[str, Any]) -> AssetUpdated:
    return AssetUpdated(
        **envelope, asset_id=asset.id, key=asset.key, size_bytes=obj.size, etag=obj.etag
    )


def _removed(asset: AssetState, envelope: dict[str, Any]) -> AssetRemoved:
    return AssetRemoved(**envelope, asset_id=asset.id, key=asset.key)
