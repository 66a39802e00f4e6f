"""scripts/supervise.py's rules: Procfile entries, replicas and ports, restart backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.supervise import Backoff, concurrency, expand, parse_procfile

ROOT = Path(__file__).resolve().parents[2]


def test_procfile_dev_lists_the_four_services_in_order():
    entries = parse_procfile((ROOT / "Procfile.dev").read_text())

    assert list(entries) == ["gateway", "catalog", "transcoder", "notifier"]
    # exec: the pid the supervisor signals first is the service's own, not a shell's.
    assert all(" exec " in f" {command}" for command in entries.values())


def test_a_line_that_is_not_name_colon_command_is_refused():
    with pytest.raises(ValueError, match="line 2"):
        parse_procfile("# comment\nno command here\n")


def test_replicas_get_their_own_port_by_procfile_line():
    entries = {"web": "serve", "worker": "work", "beat": "tick"}

    specs = expand(entries, {"worker": 3}, base_port=5000)

    assert [(s.name, s.port) for s in specs] == [
        ("web.1", 5000),
        ("worker.1", 5100),
        ("worker.2", 5101),
        ("worker.3", 5102),
        ("beat.1", 5200),
    ]


def test_choosing_entries_keeps_their_ports():
    specs = expand({"web": "serve", "worker": "work", "beat": "tick"}, {}, 5000, ["beat"])

    assert [(s.name, s.command, s.port) for s in specs] == [("beat.1", "tick", 5200)]


def test_an_unknown_entry_is_refused():
    with pytest.raises(ValueError, match="not in the Procfile: nope"):
        expand({"web": "serve"}, {}, 5000, ["web", "nope"])


@pytest.mark.parametrize("pair", ["transcoder=0", "transcoder=x", "transcoder"])
def test_concurrency_wants_a_positive_count(pair):
    with pytest.raises(ValueError, match="NAME=N"):
        concurrency([pair])


def test_backoff_doubles_up_to_the_cap():
    backoff = Backoff(first=1, cap=30, healthy_after=30)

    delays = [backoff.next_delay(ran_for=0.5) for _ in range(7)]

    assert delays == [1, 2, 4, 8, 16, 30, 30]


def test_a_healthy_run_resets_the_backoff():
    backoff = Backoff(first=1, cap=30, healthy_after=30)
    for _ in range(4):
        backoff.next_delay(ran_for=1)

    assert backoff.next_delay(ran_for=31) == 1
    assert backoff.next_delay(ran_for=1) == 2
