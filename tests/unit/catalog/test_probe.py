"""The probe summary kept on an asset, and the bounded background scheduler."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mpr_catalog.application.ports import MediaUnreachable
from mpr_catalog.application.probe_queue import ProbeScheduler
from mpr_catalog.domain.probe import ProbeOutcome, UnreadableMedia, summarize
from mpr_shared.contracts import ProbeStatus
from tests.unit.catalog.fakes import ffprobe_json


def test_summary_keeps_container_and_per_stream_facts() -> None:
    summary = summarize(ffprobe_json(width=640, height=360, duration=3.5))
    assert summary["container"].startswith("mov,mp4")
    assert (summary["duration"], summary["size"], summary["bit_rate"]) == (3.5, 71234, 284936)
    video, audio = summary["streams"]
    assert video == {
        "index": 0,
        "type": "video",
        "codec": "h264",
        "profile": "Constrained Baseline",
        "bit_rate": 250000,
        "duration": 3.5,
        "width": 640,
        "height": 360,
        "frame_rate": 25.0,
        "pixel_format": "yuv420p",
    }
    assert (audio["codec"], audio["channels"], audio["sample_rate"]) == ("aac", 1, 48000)


def test_frame_rate_falls_back_when_average_is_unknown() -> None:
    raw = ffprobe_json(audio=False)
    raw["streams"][0] |= {"avg_frame_rate": "0/0", "r_frame_rate": "30000/1001"}
    assert summarize(raw)["streams"][0]["frame_rate"] == 29.97


def test_duration_falls_back_to_the_longest_stream() -> None:
    raw = ffprobe_json(duration=4.0)
    del raw["format"]["duration"]
    assert summarize(raw)["duration"] == 4.0


@pytest.mark.parametrize(
    "raw",
    [
        {"format": {"format_name": "tty"}, "streams": []},
        {},
        {"streams": [{"codec_type": "video", "disposition": {"attached_pic": 1}}]},
        {"streams": [{"codec_type": "subtitle", "codec_name": "mov_text"}]},
    ],
)
def test_nothing_playable_is_a_failed_probe(raw) -> None:
    with pytest.raises(UnreadableMedia, match="no audio or video stream"):
        summarize(raw)


class Finished:
    """The scheduler's on_result: what each asset that left the queue came to."""

    def __init__(self) -> None:
        self.outcomes: list[ProbeOutcome | None] = []
        self.backlogs: list[int] = []
        self._changed = asyncio.Event()

    def __call__(self, outcome: ProbeOutcome | None, backlog: int) -> None:
        self.outcomes.append(outcome)
        self.backlogs.append(backlog)
        self._changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.outcomes) < count:
                self._changed.clear()
                await self._changed.wait()


OK = ProbeOutcome(ProbeStatus.OK, summary={"streams": []})


async def test_scheduler_bounds_concurrency_and_runs_each_id_once() -> None:
    running = peak = 0
    seen: list[uuid.UUID] = []

    async def probe(asset_id: uuid.UUID) -> ProbeOutcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        seen.append(asset_id)
        running -= 1
        return OK

    finished = Finished()
    scheduler = ProbeScheduler(probe, concurrency=3, attempts=1, on_result=finished)
    await scheduler.start()
    ids = [uuid.uuid4() for _ in range(12)]
    scheduler.submit(ids)
    scheduler.submit(ids[:5])  # already queued: not twice
    await finished.wait(12)
    await scheduler.stop()
    assert peak == 3
    assert sorted(seen) == sorted(ids)
    assert finished.outcomes == [OK] * 12 and finished.backlogs[-1] == 0


async def test_scheduler_retries_unreachable_storage_then_gives_up() -> None:
    attempts: list[uuid.UUID] = []
    down_for = 2

    async def probe(asset_id: uuid.UUID) -> ProbeOutcome:
        attempts.append(asset_id)
        if len(attempts) <= down_for:
            raise MediaUnreachable("Connection refused")
        return OK

    finished = Finished()
    scheduler = ProbeScheduler(
        probe, concurrency=1, attempts=3, backoff_seconds=0, on_result=finished
    )
    await scheduler.start()
    scheduler.submit([uuid.uuid4()])
    await finished.wait(1)
    assert len(attempts) == 3 and finished.outcomes == [OK]

    attempts.clear()
    down_for = 10  # down for longer than three attempts
    scheduler.submit([uuid.uuid4()])
    await finished.wait(2)
    await scheduler.stop()
    assert len(attempts) == 3 and finished.outcomes == [OK, None]  # still pending


async def test_scheduler_survives_an_unexpected_error() -> None:
    async def probe(asset_id: uuid.UUID) -> ProbeOutcome:
        if asset_id == broken:
            raise RuntimeError("bug")
        return OK

    broken, fine = uuid.uuid4(), uuid.uuid4()
    finished = Finished()
    scheduler = ProbeScheduler(probe, concurrency=1, attempts=3, on_result=finished)
    await scheduler.start()
    scheduler.submit([broken, fine])
    await finished.wait(2)
    await scheduler.stop()
    assert finished.outcomes == [None, OK]
