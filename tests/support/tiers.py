"""What a run selected, skipped and ran, per test tier: the skip summary and the tier check.

``make test`` ends with one line saying how many tests skipped and why. The tier check fails
a run in which a tier that was selected whole ran nothing (every test skipped, or, in a run of
everything, no test collected): a green run must not hide a missing install step, such as an
endpoint or a tool that every integration test needs. What the developer chose decides: a run
of the configured test paths is judged on the tiers that ``-m``, ``-k``, ``--lf`` ... left
whole; a run of files or tests named on the command line is not judged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

TIERS = ("unit", "service", "integration", "e2e")


def tier_of(item: pytest.Item) -> str | None:
    """The item's tier marker (conftest gives every test under tests/<tier>/ its own)."""
    return next((tier for tier in TIERS if item.get_closest_marker(tier)), None)


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skip report gives, without pytest's ``Skipped:`` prefix."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def skip_summary(reasons: list[str]) -> str:
    """One line: how many tests skipped, and why, most frequent reason first."""
    if not reasons:
        return "skipped: none"
    counted = Counter(reasons).most_common()
    return f"skipped {len(reasons)}: " + "; ".join(f"{n} x {why}" for why, n in counted)


@dataclass
class TierCounts:
    """Per tier: tests selected, deselected and skipped in one run."""

    selected: Counter[str] = field(default_factory=Counter)
    deselected: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def problems(self, full_run: bool) -> list[str]:
        """Why the run must fail: a tier kept whole that ran no test (empty if none)."""
        found = []
        for tier in TIERS:
            selected = self.selected[tier]
            if self.deselected[tier]:
                continue  # narrowed on purpose (-m, -k, --lf ...)
            if selected and self.skipped[tier] == selected:
                found.append(f"every selected {tier} test ({selected}) was skipped")
            elif not selected and full_run:
                found.append(f"no {tier} test was collected")
        return found


class TierCheck:
    """The pytest plugin: counts per tier, then the summary line and the verdict."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts = TierCounts()
        self.tiers: dict[str, str | None] = {}
        self.skip_reasons: list[str] = []
        self.problems: list[str] = []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.counts.deselected.update(tier_of(item) for item in items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.tiers = {item.nodeid: tier_of(item) for item in session.items}
        self.counts.selected.update(self.tiers.values())

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skip_reasons.append(skip_reason(report))
            self.counts.skipped[self.tiers.get(report.nodeid)] += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return  # interrupted, usage error, nothing collected: pytest says so itself
        if self.config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
            return  # paths named on the command line: a deliberate choice, judged by nobody
        self.problems = self.counts.problems(full_run=not self.counts.deselected.total())
        if self.problems and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(skip_summary(self.skip_reasons))
        for problem in self.problems:
            terminalreporter.write_line(
                f"tier check FAILED: {problem}; is an endpoint or tool not installed? "
                "(a run narrowed with -m, -k or paths checks only the tiers it keeps whole)",
                red=True,
                bold=True,
            )


def register(config: pytest.Config) -> None:
    """Install the tier check in a pytest run (from the test suite's pytest_configure)."""
    config.pluginmanager.register(TierCheck(config), "mpr-tier-check")
