"""Package-level guarantees: a light import, resolvable public names, a lint-clean tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

import instit
from conftest import REPO

HEAVY = ("torch", "transformers", "cv2", "av", "accelerate", "bitsandbytes", "supervision")


def test_import_does_not_load_heavy_dependencies():
    code = (
        f"import json, sys, instit; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("name", sorted(set(instit.__all__) - {"__version__"}))
def test_every_public_name_resolves(name):
    assert getattr(instit, name) is not None


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = instit.no_such_thing


def test_errors_are_catchable_as_standard_exceptions():
    assert issubclass(instit.InstancesError, ValueError)
    assert issubclass(instit.VideoError, instit.MediaError)
    assert issubclass(instit.InstitTypeError, TypeError)
    assert issubclass(instit.DependencyError, ImportError)
    assert issubclass(instit.NotEnoughMemoryError, MemoryError)
    for name in ("CheckpointError", "JudgeError", "DatasetError"):
        assert issubclass(getattr(instit, name), instit.InstitError)


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
