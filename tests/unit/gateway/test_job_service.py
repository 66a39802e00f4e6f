"""Job use cases against fake ports: outbox writes, idempotency, cancel, retry, events."""

from __future__ import annotations

from uuid import uuid4

import pytest

from mpr_gateway.application.job_request import JobRequest, parse_job_request
from mpr_gateway.application.jobs import JobService, Outcome
from mpr_gateway.application.ports import JobFilter
from mpr_gateway.domain.errors import Conflict, InvalidRequest, NotFound
from mpr_shared.contracts import (
    CancelJob,
    CreateJob,
    JobCancelled,
    JobCompleted,
    JobProgress,
    JobQueued,
    JobSpec,
    JobStarted,
    JobStatus,
    OutputFile,
    ProcessMedia,
)
from tests.unit.gateway.fakes import FakeStore, asset


def request(**kw) -> JobRequest:
    return JobRequest(**{"source_key": "v/a.mp4", "kind": "transcode", "preset": "h264-720p", **kw})


@pytest.fixture
def video(store: FakeStore):
    a = asset("v/a.mp4", duration=10.0)
    store.assets[a.id] = a
    return a


async def test_create_commits_job_and_both_messages_together(service, store, video, wakes):
    created = await service.create(request(priority=7))
    job = created.job
    assert store.jobs[job.id].status == "queued" and store.commits == 1
    assert job.asset_id == video.id and job.output_key == f"v/a/{job.id}/h264-720p.mp4"
    [(exchange, process, priority)] = [o for o in store.outbox if isinstance(o[1], ProcessMedia)]
    assert (exchange, priority, process.priority) == ("mpr.commands", 7, 7)
    assert process.job_id == job.id and process.source_duration == 10.0
    assert process.output_key == job.output_key and process.output_bucket == "out"
    [queued] = store.messages(JobQueued)
    assert queued.job_id == job.id and queued.causation_id == process.id
    assert wakes == [1]


async def test_idempotent_retry_returns_the_same_job(service, store, video):
    first = await service.create(request(), idempotency_key="k1", client="alice")
    again = await service.create(request(), idempotency_key="k1", client="alice")
    assert again.replayed and again.job.id == first.job.id
    assert len(store.jobs) == 1 and len(store.messages(ProcessMedia)) == 1


async def test_same_key_different_body_conflicts(service, video):
    await service.create(request(), idempotency_key="k1")
    with pytest.raises(Conflict, match="different request"):
        await service.create(request(priority=3), idempotency_key="k1")


async def test_idempotency_keys_are_scoped_per_client(service, store, video):
    a = await service.create(request(), idempotency_key="k", client="alice")
    b = await service.create(request(), idempotency_key="k", client="bob")
    assert a.job.id != b.job.id and len(store.jobs) == 2


async def test_unknown_source_is_not_found(service):
    with pytest.raises(NotFound, match=r"no object 'missing\.mp4'"):
        await service.create(request(source_key="missing.mp4"))


async def test_unregistered_object_in_s3_is_accepted(service, store):
    created = await service.create(request(source_key="loose/clip.mov"))
    assert created.job.asset_id is None and created.job.source_key == "loose/clip.mov"


async def test_unsupported_extension_is_invalid(service):
    with pytest.raises(InvalidRequest, match="not a supported media file"):
        await service.create(request(source_key="notes.txt"))


async def test_deleted_asset_is_not_found(service, store):
    gone = asset("v/gone.mp4", status="deleted")
    store.assets[gone.id] = gone
    with pytest.raises(NotFound):
        await service.create(request(asset_id=gone.id, source_key=None))


async def test_times_are_checked_against_probed_duration(service, video):
    with pytest.raises(InvalidRequest, match="past the end"):
        await service.create(request(kind="trim", preset=None, start=2, end=11))
    with pytest.raises(InvalidRequest, match="at=10s is past the end"):
        await service.create(request(kind="thumbnail", preset=None, at=10))
    created = await service.create(request(kind="trim", preset=None, start=2, end=10))
    assert created.job.spec == JobSpec(kind="trim", start=2.0, end=10.0)


async def test_unknown_preset_lists_valid_ones_for_the_kind(service, video):
    with pytest.raises(InvalidRequest, match="valid presets: audio-aac, audio-mp3") as err:
        await service.create(request(kind="audio", preset="h264-720p"))
    assert err.value.details == {"valid_presets": ["audio-aac", "audio-mp3"]}


async def test_audio_source_cannot_make_video(service, store):
    song = asset("s.mp3", media_type="audio")
    store.assets[song.id] = song
    with pytest.raises(InvalidRequest, match="needs a video source"):
        await service.create(request(source_key="s.mp3", kind="hls", preset=None))


async def test_cancel_queued_is_immediate_and_tells_everyone(service, store, video):
    job = (await service.create(request())).job
    cancelled = await service.cancel(job.id)
    assert cancelled.status == "cancelled" == store.jobs[job.id].status
    assert [m.job_id for m in store.messages(CancelJob)] == [job.id]
    assert [m.job_id for m in store.messages(JobCancelled)] == [job.id]


async def test_cancel_running_only_sends_cancel_job(service, store, video):
    job = (await service.create(request())).job
    await service.apply_event(JobStarted(job_id=job.id, worker="w"))
    result = await service.cancel(job.id)
    assert result.status == "running" and len(store.messages(CancelJob)) == 1
    assert store.messages(JobCancelled) == []


async def test_cancel_finished_conflicts(service, video):
    job = (await service.create(request())).job
    await service.apply_event(JobCompleted(job_id=job.id, outputs=[]))
    with pytest.raises(Conflict):
        await service.cancel(job.id)


async def test_retry_is_a_new_attempt_and_old_events_are_ignored(service, store, video):
    job = (await service.create(request())).job
    await service.cancel(job.id)
    retried = await service.retry(job.id)
    assert (retried.status, retried.attempt, retried.progress) == ("queued", 2, 0.0)
    assert [m.attempt for m in store.messages(ProcessMedia)] == [1, 2]
    stale = JobCompleted(job_id=job.id, attempt=1, outputs=[])
    assert await service.apply_event(stale) is Outcome.IGNORED
    assert store.jobs[job.id].status == "queued"


async def test_events_drive_the_lifecycle_and_replays_are_harmless(service, store, video):
    job = (await service.create(request())).job
    out = OutputFile(key=f"v/a/{job.id}/h264-720p.mp4", bucket="out", size_bytes=42)
    events = [
        JobStarted(job_id=job.id, worker="w"),
        JobProgress(job_id=job.id, percent=50),
        JobProgress(job_id=job.id, percent=30),
        JobCompleted(job_id=job.id, outputs=[out]),
    ]
    outcomes = [await service.apply_event(e) for e in events + events]
    assert outcomes[:4] == [Outcome.APPLIED, Outcome.APPLIED, Outcome.IGNORED, Outcome.APPLIED]
    assert set(outcomes[4:]) == {Outcome.IGNORED}
    final = await service.get(job.id)
    assert (final.status, final.progress, final.worker) == (JobStatus.COMPLETED, 100.0, "w")
    [view] = service.outputs(final)
    assert view.size_bytes == 42 and view.download_url.startswith("https://s3.test/out/")


async def test_event_for_unknown_job(service):
    assert await service.apply_event(JobStarted(job_id=uuid4(), worker="w")) is Outcome.UNKNOWN_JOB


async def test_create_from_command_is_idempotent(service, store, video):
    command = CreateJob(
        source_bucket="in",
        source_key="v/a.mp4",
        spec=JobSpec(kind="thumbnail", at=1.0),
        idempotency_key="auto:v/a.mp4:etag",
        requested_by="catalog:auto",
    )
    first = await service.create_from_command(command)
    again = await service.create_from_command(command)
    assert again.replayed and first.job.id == again.job.id
    assert first.job.preset == "thumbnail-jpg" and len(store.messages(ProcessMedia)) == 1
    [process] = store.messages(ProcessMedia)
    assert process.causation_id == command.id


async def test_pagination_walks_every_job_once(service: JobService, video):
    ids = {(await service.create(request())).job.id for _ in range(7)}
    seen, cursor = [], None
    while True:
        page = await service.page(JobFilter(), cursor, limit=3)
        seen += [j.id for j in page.items]
        if not (cursor := page.next_cursor):
            break
    assert len(seen) == 7 and set(seen) == ids


def test_parse_job_request_lists_every_problem():
    with pytest.raises(InvalidRequest) as err:
        parse_job_request({"kind": "bogus", "priority": 12})
    fields = {d["field"] for d in err.value.details}
    assert {"kind", "priority"} <= fields
