"""Event filters: topic patterns, type names, ids."""

from __future__ import annotations

import uuid

import pytest

from mpr_notifier.application.filters import EventFilter, InvalidFilter, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("job.completed", "job.completed", True),
        ("job.completed", "job.failed", False),
        ("job.*", "job.progress", True),
        ("job.*", "asset.registered", False),
        ("*.registered", "asset.registered", True),
        ("#", "asset.probed", True),
        ("job.#", "job", True),
        ("job.#", "job.a.b", True),
        ("job.*", "job.a.b", False),
        ("*", "job.completed", False),
    ],
)
def test_topic_matching_follows_amqp_rules(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_types_accept_routing_keys_patterns_and_type_names() -> None:
    f = EventFilter.parse(types="JobCompleted, asset.*")
    assert f.patterns == ("job.completed", "asset.*")
    assert f.matches("job.completed", None, None)
    assert f.matches("asset.probed", None, None)
    assert not f.matches("job.progress", None, None)


def test_no_filter_matches_everything() -> None:
    f = EventFilter.parse()
    assert f.matches("job.progress", str(uuid.uuid4()), None)
    assert f.matches("asset.removed", None, str(uuid.uuid4()))


def test_job_and_asset_ids_must_match_exactly() -> None:
    job, asset = uuid.uuid4(), uuid.uuid4()
    f = EventFilter.parse(job_id=str(job).upper())  # canonicalised
    assert f.matches("job.completed", str(job), None)
    assert not f.matches("job.completed", str(uuid.uuid4()), None)
    assert not f.matches("asset.registered", None, str(asset))
    g = EventFilter.parse(asset_id=str(asset), types="asset.#")
    assert g.matches("asset.probed", None, str(asset))
    assert not g.matches("job.queued", None, str(asset))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_id": "nope"}, "job_id must be a UUID"),
        ({"asset_id": "123"}, "asset_id must be a UUID"),
        ({"types": "JobDone"}, "unknown event type 'JobDone'"),
        ({"types": "job..completed"}, "unknown event type"),
    ],
)
def test_bad_filters_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        EventFilter.parse(**kwargs)
