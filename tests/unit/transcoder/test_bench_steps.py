"""The replica profiler (bench/_traced_replica.py) wraps methods that exist under those names."""

from __future__ import annotations

import importlib
import inspect

from bench._traced_replica import STEPS


def test_every_traced_step_names_an_async_method_of_the_replica():
    for module, cls, method, step in STEPS:
        owner = getattr(importlib.import_module(module), cls)
        assert inspect.iscoroutinefunction(getattr(owner, method)), (module, cls, method, step)
