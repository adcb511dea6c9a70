"""Shared test fixtures.

Tests that read ``../shared`` (reference images, conformance checkpoints) use the ``shared_dir``
fixture: on a user's clone without it they skip, but under ``CI=true`` a missing folder fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INSTIT_SHARED_DIR", REPO.parent / "shared"))


def require_shared(*parts: str) -> Path:
    """Return ``../shared/<parts>``; skip (locally) or fail (CI) when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"shared fixture {path} is missing"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: ../shared must be present)")
        pytest.skip(message)
    return path


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture
def reference_dir() -> Path:
    return require_shared("reference", "inst-it")


@pytest.fixture
def conformance_dir() -> Path:
    return require_shared("conformance")
