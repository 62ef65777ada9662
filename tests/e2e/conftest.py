"""Fixtures every daemon test shares: the soft PLC (Modbus on a free port) in the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plc.softplc import SoftPlc
from plc.tags import load_tags
from tests.support.ports import free_port


@pytest.fixture
async def softplc() -> AsyncIterator[SoftPlc]:
    plc = SoftPlc(load_tags(), modbus_port=free_port(), opcua_port=None)
    await plc.start()
    try:
        yield plc
    finally:
        await plc.stop()
