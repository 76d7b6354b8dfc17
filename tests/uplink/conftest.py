"""The platform side of the uplink tests: the reference platform server, started on demand per test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import devstack
import pytest
from uplink_hub import GATEWAY_ID, SECRET


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Callable[..., devstack.Platform]]:
    """``platform_factory(*extra_args, port=0)`` starts the server for ``GATEWAY_ID``; stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(*extra_args: str, port: int = 0) -> devstack.Platform:
            return stack.enter_context(devstack.platform_server(
                tmp_path / "platform", GATEWAY_ID, secret=SECRET, port=port, extra_args=extra_args))
        yield start
