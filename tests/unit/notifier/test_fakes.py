"""The fakes have the ports' methods with the ports' signatures (a fake that drifts from its
Protocol would let unit tests pass against code the real adapters cannot serve)."""

from __future__ import annotations

import inspect
import typing

import pytest

from mpr_notifier.application.ports import WebhookSender, WebhookTargets
from tests.unit.notifier.fakes import FakeJobs, FakeReceivers


def shape(function: typing.Callable[..., object]) -> tuple[bool, list[tuple[str, object]]]:
    """Whether it is a coroutine function, and its parameters and return with their types."""
    hints = typing.get_type_hints(function)
    params = [p for p in inspect.signature(function).parameters.values() if p.name != "self"]
    return inspect.iscoroutinefunction(function), [
        *((p.name, hints.get(p.name)) for p in params),
        ("return", hints.get("return")),
    ]


def port_methods(port: type) -> list[str]:
    return [n for n, v in vars(port).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize(
    ("port", "fake"), [(WebhookTargets, FakeJobs), (WebhookSender, FakeReceivers)]
)
def test_fake_matches_its_port(port: type, fake: type) -> None:
    methods = port_methods(port)
    assert methods, f"{port.__name__} declares no methods"
    for name in methods:
        assert shape(getattr(fake, name)) == shape(getattr(port, name)), f"{fake.__name__}.{name}"
