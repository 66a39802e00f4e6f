"""Per-replica work dirs and the settings' guard against the broker's consumer timeout."""

from __future__ import annotations

import fcntl
import os

import pytest
from pydantic import ValidationError

from mpr_transcoder.adapters.workspace import LOCK_NAME, Workspace, new_instance_id, sweep_stale
from mpr_transcoder.settings import TranscoderSettings


def test_dirs_of_dead_replicas_are_swept_and_live_ones_kept(tmp_path):
    dead = tmp_path / "host-1-aaaaaa"
    (dead / "job-1").mkdir(parents=True)
    (dead / "job-1" / "source.mp4").write_bytes(b"left behind by a SIGKILL")
    live = tmp_path / "host-2-bbbbbb"
    live.mkdir()
    fd = os.open(live / LOCK_NAME, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        assert sweep_stale(tmp_path) == 1
        assert not dead.exists() and live.exists()
    finally:
        os.close(fd)


def test_a_workspace_sweeps_on_open_and_removes_itself_on_close(tmp_path):
    (tmp_path / "old-replica" / "job-x").mkdir(parents=True)
    workspace = Workspace(tmp_path, "me").open()
    assert [p.name for p in tmp_path.iterdir()] == ["me"]
    assert sweep_stale(tmp_path) == 0  # our own lock is held
    workspace.close()
    assert list(tmp_path.iterdir()) == []


def test_instance_ids_are_unique_and_carry_the_pid():
    first, second = new_instance_id(), new_instance_id()
    assert first != second and f"-{os.getpid()}-" in first


def test_a_job_may_not_outlive_the_consumer_timeout():
    with pytest.raises(ValidationError, match="consumer timeout"):
        TranscoderSettings(
            MAX_JOB_SECONDS=3600, SHUTDOWN_GRACE_SECONDS=60, RABBITMQ_CONSUMER_TIMEOUT_SECONDS=1800
        )
    ok = TranscoderSettings(MAX_JOB_SECONDS=1500, RABBITMQ_CONSUMER_TIMEOUT_SECONDS=1800)
    assert ok.max_job_seconds == 1500


def test_production_refuses_a_placeholder_callback_secret():
    with pytest.raises(ValidationError, match="MPR_CALLBACK_SECRET"):
        TranscoderSettings(
            MPR_ENV="production",
            AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
            AWS_SECRET_ACCESS_KEY="real-secret-1",
            AMQP_URL="amqp://mpr:real-pass@rabbit/",
            MPR_CALLBACK_SECRET="changeme",
        )
