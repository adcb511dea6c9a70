"""Package-level guarantees: a light import, resolvable public names, a lint-clean tree."""

from __future__ import annotations

import ast
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

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


def _type_checking_imports(source: str) -> dict[str, str]:
    """``{name: module}`` of the ``if TYPE_CHECKING:`` imports in a module's source."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in ast.walk(node):
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        assert alias.asname in (None, alias.name), ast.unparse(statement)
                        found[alias.name] = statement.module
    return found


@pytest.mark.parametrize("package", ["instit", "instit.model"])
def test_lazy_exports_and_type_checking_imports_agree(package):
    """A lazy package's two export lists name the same objects from the same modules.

    ``_EXPORTS`` drives the lazy ``__getattr__``; the ``TYPE_CHECKING`` imports are what type
    checkers and IDEs see (without them ``instit.InstIt`` is ``Any`` to them). A name added to
    one and not the other fails here.
    """
    module = importlib.import_module(package)
    static = _type_checking_imports(Path(module.__file__).read_text(encoding="utf-8"))
    assert static == module._EXPORTS


def test_instit_methods_have_their_real_return_types():
    """``InstIt.ask`` / ``describe_instances`` are typed (overloads by question and stream)."""
    import typing

    import instit.results as results
    from instit.model.core import InstIt

    names = vars(results)
    returns = [
        typing.get_type_hints(overload, localns=names)["return"]
        for overload in typing.get_overloads(InstIt.ask)
    ]
    assert returns == [results.AnswerStream, results.Answer, list[results.Answer]]
    hints = typing.get_type_hints(InstIt.describe_instances, localns=names)
    assert hints["return"] == results.ImageDescription | results.VideoDescription


def test_export_check_sees_a_missing_import():
    source = Path(instit.__file__).read_text(encoding="utf-8")
    broken = source.replace("        load_video as load_video,\n", "")
    assert broken != source
    assert "load_video" not in _type_checking_imports(broken)


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
