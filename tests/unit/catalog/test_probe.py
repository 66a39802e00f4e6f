"""The probe summary kept on an asset, and the bounded background scheduler."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mpr_catalog.probe import ProbeFailed, ProbeUnavailable, summarize
from mpr_catalog.probing import ProbeScheduler
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
    with pytest.raises(ProbeFailed, match="no audio or video stream"):
        summarize(raw)


async def test_scheduler_bounds_concurrency_and_runs_each_id_once() -> None:
    running = peak = 0
    seen: list[uuid.UUID] = []

    async def probe(asset_id: uuid.UUID) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        seen.append(asset_id)
        running -= 1

    scheduler = ProbeScheduler(probe, concurrency=3)
    await scheduler.start()
    ids = [uuid.uuid4() for _ in range(12)]
    scheduler.submit(ids)
    scheduler.submit(ids[:5])  # already queued: not twice
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.stop()
    assert peak == 3
    assert sorted(seen) == sorted(ids)


async def test_scheduler_retries_unavailable_storage_then_gives_up() -> None:
    attempts: list[uuid.UUID] = []
    results: list[object] = []

    async def probe(asset_id: uuid.UUID) -> str:
        attempts.append(asset_id)
        if len(attempts) < 3:
            raise ProbeUnavailable("Connection refused")
        return "done"

    scheduler = ProbeScheduler(
        probe, concurrency=1, attempts=3, backoff_seconds=0, on_result=results.append
    )
    await scheduler.start()
    scheduler.submit([uuid.uuid4()])
    await asyncio.wait_for(scheduler.join(), 5)
    assert len(attempts) == 3 and results == ["done"]

    async def always_down(asset_id: uuid.UUID) -> None:
        attempts.append(asset_id)
        raise ProbeUnavailable("Connection refused")

    scheduler._probe = always_down
    attempts.clear()
    scheduler.submit([uuid.uuid4()])
    await asyncio.wait_for(scheduler.join(), 5)
    await scheduler.stop()
    assert len(attempts) == 3 and results == ["done"]
