"""Fixtures of the integration tests: the wheel of this checkout, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.release import build_wheel, export_repo


@pytest.fixture(scope="session")
def release_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout as it is (version from pyproject.toml)."""
    base = tmp_path_factory.mktemp("release-wheel")
    return build_wheel(export_repo(base / "src"), base / "dist")
