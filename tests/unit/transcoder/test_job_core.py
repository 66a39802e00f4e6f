"""The job core with fake storage, runner and publisher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mpr_shared.contracts import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    SourceStreams,
)
from mpr_transcoder.application.job_core import CoreConfig, JobCore, StopSignal
from mpr_transcoder.application.ports import FFprobeFailed, RunResult, SourceMissing
from mpr_transcoder.domain.errors import Interrupted, StopReason, TransientError
from mpr_transcoder.domain.ffmpeg_args import SOURCE_FORMATS, InputMode, Limits
from mpr_transcoder.domain.verification import hls_owned_keys
from tests.unit.transcoder.fakes import (
    FakeMetrics,
    FakePublisher,
    FakeRunner,
    FakeStorage,
    make_job,
    probe_data,
)


def core_with(tmp_path: Path, runner=None, storage=None, **config) -> tuple[JobCore, FakePublisher]:
    publisher = FakePublisher()
    core = JobCore(
        config=CoreConfig(scratch=tmp_path, limits=Limits(), **config),
        storage=storage or FakeStorage(),
        runner=runner or FakeRunner(),
        publisher=publisher,
        metrics=FakeMetrics(),
        worker="replica-1",
    )
    return core, publisher


async def test_a_transcode_publishes_started_progress_and_completes_with_outputs(tmp_path):
    storage = FakeStorage()
    core, publisher = core_with(tmp_path, storage=storage)
    job = make_job(preset="h264-480p")
    event = await core.run(job)
    assert isinstance(event, JobCompleted)
    assert isinstance(publisher.events[0], JobStarted)
    assert publisher.events[0].worker == "replica-1"
    progress = [e for e in publisher.events if isinstance(e, JobProgress)]
    assert [p.percent for p in progress] == [50.0, 100.0]
    (output,) = event.outputs
    assert output.key == job.output_key and output.bucket == "out"
    assert output.size_bytes == len(b"partial")
    assert output.probe["height"] == 480 and output.probe["video_codec"] == "h264"
    assert storage.keys() == [job.output_key]
    assert event.correlation_id == job.correlation_id and event.causation_id == job.id
    assert list(tmp_path.iterdir()) == []  # the job's temp dir is gone


async def test_local_names_are_generated_not_taken_from_keys(tmp_path):
    storage = FakeStorage({("in", "../../etc/evil name.mp4"): b"x"})
    job = make_job().model_copy(update={"source_key": "../../etc/evil name.mp4"})
    core, _ = core_with(tmp_path, storage=storage)
    await core.run(job)
    (path,) = storage.downloads
    assert path.parent.parent == tmp_path and path.name == "source.mp4"


async def test_an_undecodable_source_fails_fast_with_ffprobe_lines(tmp_path):
    runner = FakeRunner()

    def unreadable(target: str) -> dict:
        # ffprobe names the file it was given: a path in the replica's scratch directory.
        raise FFprobeFailed("ffprobe exited with 1", [f"{target}: Invalid data found"])

    runner.probe_hook = unreadable
    core, _ = core_with(tmp_path, runner=runner)
    event = await core.run(make_job())
    assert isinstance(event, JobFailed) and not event.retryable
    assert (
        event.reason == "the source is not a decodable media file: the source: Invalid data found"
    )
    assert event.error_lines == ["the source: Invalid data found"]
    assert str(tmp_path) not in event.reason + "".join(event.error_lines)
    assert runner.runs == []


async def test_ffmpeg_errors_name_the_source_and_output_never_scratch_paths(tmp_path):
    runner = FakeRunner()

    async def fail_naming_paths(args, *, on_progress, stop):
        source = args[args.index("-i") + 1]
        (output,) = (a for a in args if "/output." in a)
        lines = [f"{source}: corrupt frame", f"Error opening output file {output}."]
        return RunResult(1, lines)

    runner.run = fail_naming_paths
    core, _ = core_with(tmp_path, runner=runner)
    event = await core.run(make_job())
    assert isinstance(event, JobFailed)
    assert event.error_lines == [
        "the source: corrupt frame",
        "Error opening output file the output.",
    ]
    assert event.reason == "FFmpeg failed (exit code 1): Error opening output file the output."


async def test_an_ffmpeg_failure_reports_its_error_lines_and_removes_outputs(tmp_path):
    runner = FakeRunner(returncode=1, error_lines=["Error while opening encoder"])
    storage = FakeStorage()
    job = make_job()
    storage.objects["out", job.output_key] = b"from an earlier crashed attempt"
    core, _ = core_with(tmp_path, runner=runner, storage=storage)
    event = await core.run(job)
    assert isinstance(event, JobFailed)
    assert "exit code 1" in event.reason and event.error_lines == ["Error while opening encoder"]
    assert storage.keys() == []


async def test_an_output_with_the_wrong_duration_fails_verification(tmp_path):
    runner = FakeRunner(output=probe_data(duration=3.0, height=480))
    storage = FakeStorage()
    core, _ = core_with(tmp_path, runner=runner, storage=storage)
    event = await core.run(make_job())
    assert isinstance(event, JobFailed)
    assert "failed verification" in event.reason and "duration 3.000s" in event.reason
    assert storage.keys() == []


@pytest.mark.parametrize(
    ("spec", "config", "reason"),
    [
        ({}, {"max_input_bytes": 3}, "MAX_INPUT_BYTES"),
        ({}, {"max_duration_seconds": 5}, "MAX_DURATION_SECONDS"),
    ],
)
async def test_bad_inputs_and_limits_fail_without_running_ffmpeg(tmp_path, spec, config, reason):
    runner = FakeRunner()
    core, _ = core_with(tmp_path, runner=runner, **config)
    event = await core.run(make_job(**spec))
    assert isinstance(event, JobFailed) and reason in event.reason
    assert runner.runs == []


async def test_a_missing_source_is_bad_input(tmp_path):
    core, _ = core_with(tmp_path, storage=FakeStorage({}))
    event = await core.run(make_job())
    assert isinstance(event, JobFailed) and "does not exist" in event.reason


async def test_a_source_deleted_between_head_and_get_is_bad_input(tmp_path):
    storage = FakeStorage()

    async def vanished(bucket, key, dest, *, max_bytes):
        raise SourceMissing(key)

    storage.download = vanished
    core, _ = core_with(tmp_path, storage=storage)
    event = await core.run(make_job())
    assert isinstance(event, JobFailed) and "does not exist" in event.reason


async def test_hls_of_a_video_stream_without_a_height_is_bad_input(tmp_path):
    source = probe_data()
    del source["streams"][0]["height"]
    runner = FakeRunner(source=source)
    core, _ = core_with(tmp_path, runner=runner)
    event = await core.run(make_job("hls", preset="hls-h264"))
    assert isinstance(event, JobFailed) and "reports no height" in event.reason
    assert runner.runs == []


async def test_transient_storage_errors_propagate_for_a_retry(tmp_path):
    storage = FakeStorage()
    storage.fail.add("upload")
    core, _ = core_with(tmp_path, storage=storage)
    with pytest.raises(TransientError):
        await core.run(make_job())
    assert list(tmp_path.iterdir()) == []


async def test_cancel_kills_ffmpeg_and_removes_partial_outputs(tmp_path):
    runner = FakeRunner(block=True)
    storage = FakeStorage()
    job = make_job()
    storage.objects["out", job.output_key] = b"partial upload"
    core, _ = core_with(tmp_path, runner=runner, storage=storage)
    stop = StopSignal()
    task = asyncio.create_task(core.run(job, stop))
    await runner.started.wait()
    stop.stop(StopReason.CANCEL, "user asked")
    event = await task
    assert isinstance(event, JobCancelled) and event.reason == "user asked"
    assert runner.killed and storage.keys() == []
    assert list(tmp_path.iterdir()) == []


async def test_timeout_fails_the_job_and_shutdown_hands_it_back(tmp_path):
    for reason, expected in ((StopReason.TIMEOUT, JobFailed), (StopReason.SHUTDOWN, Interrupted)):
        runner = FakeRunner(block=True)
        core, _ = core_with(tmp_path, runner=runner)
        stop = StopSignal()
        task = asyncio.create_task(core.run(make_job(), stop))
        await runner.started.wait()
        stop.stop(reason, "stop")
        if expected is Interrupted:
            with pytest.raises(Interrupted):
                await task
        else:
            assert isinstance(await task, JobFailed)
        assert list(tmp_path.iterdir()) == []


async def test_copy_trim_with_a_known_duration_skips_the_source_probe(tmp_path):
    runner = FakeRunner(output=probe_data(duration=2.0))
    core, _ = core_with(tmp_path, runner=runner)
    job = make_job("trim", output_key="a/j/trim.mp4", start=1, end=3)
    job = job.model_copy(update={"source_duration": 10.0})
    event = await core.run(job)
    assert isinstance(event, JobCompleted)
    assert all("/source" not in p for p in runner.probes)


async def test_url_mode_gives_ffmpeg_a_presigned_url(tmp_path):
    runner = FakeRunner()
    storage = FakeStorage()
    core, _ = core_with(tmp_path, runner=runner, storage=storage, input_mode=InputMode.URL)
    assert isinstance(await core.run(make_job()), JobCompleted)
    args = runner.runs[0]
    assert args[args.index("-i") + 1].startswith("http://s3.local/in/clips/a.mp4")
    assert storage.downloads == []


async def test_only_the_source_probe_is_limited_to_media_demuxers(tmp_path):
    runner = FakeRunner()
    core, _ = core_with(tmp_path, runner=runner)
    assert isinstance(await core.run(make_job()), JobCompleted)
    assert runner.probe_formats == [SOURCE_FORMATS, None]  # the output is ours: any demuxer


async def test_hls_uploads_every_file_and_removes_stale_ones_of_its_own(tmp_path):
    runner = FakeRunner(output=probe_data(duration=10.0), renditions=("720p", "480p"))
    storage = FakeStorage()
    job = make_job("hls", output_key="v/j/")
    storage.objects["out", "v/j/1080p/segment_00007.ts"] = b"stale"  # an older, taller attempt
    storage.objects["out", "v/j/notes.txt"] = b"someone else's"
    core, _ = core_with(tmp_path, runner=runner, storage=storage)
    event = await core.run(job)
    assert isinstance(event, JobCompleted), event
    keys = sorted(o.key for o in event.outputs)
    assert keys == [
        "v/j/480p/index.m3u8",
        "v/j/480p/segment_00000.ts",
        "v/j/720p/index.m3u8",
        "v/j/720p/segment_00000.ts",
        "v/j/master.m3u8",
    ]
    assert storage.keys() == sorted([*keys, "v/j/notes.txt"])
    playlists = {o.key: o.probe for o in event.outputs if o.key.endswith("index.m3u8")}
    assert all(p and p["duration"] == 10.0 for p in playlists.values())


def test_hls_owned_keys_match_only_our_names():
    keys = ["p/master.m3u8", "p/720p/index.m3u8", "p/720p/segment_00001.ts", "p/x/y/z.ts", "p/a"]
    assert hls_owned_keys("p/", keys) == keys[:3]


async def test_the_log_tail_travels_on_completed_and_failed_with_scratch_paths_named(tmp_path):
    def tail_naming(workdir_marker: str) -> list[str]:
        return [f"Input #0, mov, from '{workdir_marker}':", "video:12kB audio:3kB muxing 1%"]

    runner = FakeRunner()
    core, _ = core_with(tmp_path, runner=runner)
    original = runner.run

    async def run_with_tail(args, *, on_progress, stop):
        runner.log_tail = tail_naming(args[args.index("-i") + 1])
        return await original(args, on_progress=on_progress, stop=stop)

    runner.run = run_with_tail
    done = await core.run(make_job())
    assert isinstance(done, JobCompleted)
    assert done.log_tail == ["Input #0, mov, from 'the source':", "video:12kB audio:3kB muxing 1%"]
    runner.returncode, runner.error_lines = 1, ["Error while decoding"]
    failed = await core.run(make_job())
    assert isinstance(failed, JobFailed) and failed.log_tail[0].endswith("'the source':")
    assert str(tmp_path) not in "".join(done.log_tail + failed.log_tail)


async def test_the_source_downloads_while_admission_is_decided_and_jobstarted_waits_for_it(
    tmp_path,
):
    storage = FakeStorage()
    downloading = asyncio.Event()
    download = storage.download

    async def signalled_download(*args, **kwargs):
        downloading.set()
        return await download(*args, **kwargs)

    storage.download = signalled_download
    core, publisher = core_with(tmp_path, storage=storage)

    async def admit() -> bool:
        await asyncio.wait_for(downloading.wait(), 5)  # the GET started before the answer
        assert publisher.events == []  # and JobStarted waits for it
        return True

    event = await core.run(make_job(), StopSignal(), admit)
    assert isinstance(event, JobCompleted)
    assert publisher.types() == ["JobStarted", "JobProgress", "JobProgress"]


async def test_a_job_not_admitted_reports_nothing_and_leaves_no_files(tmp_path):
    runner = FakeRunner()
    core, publisher = core_with(tmp_path, runner=runner, storage=FakeStorage({}))

    async def refuse() -> bool:
        return False

    # The source is missing too: a job that does not run reports neither.
    assert await core.run(make_job(), StopSignal(), refuse) is None
    assert publisher.events == [] and runner.runs == []
    assert list(tmp_path.iterdir()) == []


async def test_progress_confirms_do_not_hold_ffmpeg_but_precede_the_final_event(tmp_path):
    confirm = asyncio.Event()
    publisher = FakePublisher()
    publish = publisher.publish

    async def slow_progress(event):
        if isinstance(event, JobProgress):
            await confirm.wait()
        await publish(event)

    publisher.publish = slow_progress
    runner = FakeRunner()
    core = JobCore(
        config=CoreConfig(scratch=tmp_path, limits=Limits()),
        storage=FakeStorage(),
        runner=runner,
        publisher=publisher,
        metrics=FakeMetrics(),
        worker="replica-1",
    )
    task = asyncio.create_task(core.run(make_job()))
    while "out" not in {bucket for bucket, _ in core.storage.objects}:  # uploaded
        await asyncio.sleep(0.01)
    assert not task.done() and publisher.types() == ["JobStarted"]
    confirm.set()
    assert isinstance(await task, JobCompleted)
    assert publisher.types() == ["JobStarted", "JobProgress", "JobProgress"]


async def test_a_jobstarted_that_cannot_be_published_fails_the_run(tmp_path):
    core, publisher = core_with(tmp_path)
    publisher.fail = True
    with pytest.raises(ConnectionError):
        await core.run(make_job())
    assert list(tmp_path.iterdir()) == []


async def test_a_thumbnail_plans_from_the_catalogs_probe_without_probing_the_source(tmp_path):
    # The catalog saw a 320x240 source (the fake's own probe would say 1280x720).
    runner = FakeRunner(output=probe_data(video="mjpeg", audio=None, height=240))
    core, _ = core_with(tmp_path, runner=runner)
    job = make_job("thumbnail", output_key="a/j/t.jpg", preset="thumbnail-jpg", at=2)
    streams = SourceStreams(video_codec="h264", width=320, height=240, audio_codec="aac")
    job = job.model_copy(update={"source_duration": 5.0, "source_streams": streams})
    event = await core.run(job)
    assert isinstance(event, JobCompleted), event
    assert all("/source" not in p for p in runner.probes)  # only the output was probed
    assert "scale=-2:240" in " ".join(runner.runs[0])


async def test_a_thumbnail_without_the_catalogs_probe_probes_the_source(tmp_path):
    runner = FakeRunner(output=probe_data(video="mjpeg", audio=None, height=320))
    core, _ = core_with(tmp_path, runner=runner)
    job = make_job("thumbnail", output_key="a/j/t.jpg", preset="thumbnail-jpg", at=2)
    job = job.model_copy(update={"source_duration": 5.0})  # a duration alone is not enough
    assert isinstance(await core.run(job), JobCompleted)
    assert any("/source" in p for p in runner.probes)
