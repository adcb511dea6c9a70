"""The distributions work: the wheel and sdist build offline, and the wheel alone, installed into a
fresh virtual environment, carries everything instit reads at run time (fonts, example assets).

The fresh venv sees this environment's third-party packages (numpy, Pillow, ...) through a
``.pth`` line, but not its editable instit: ``.pth`` files inside a directory added that way are
not processed, so ``import instit`` can only come from the installed wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

RUNTIME_FILES = (
    "instit/py.typed",
    "instit/assets/astronaut.jpg",
    "instit/assets/astronaut_instances.json",
    "instit/assets/ASSETS.md",
    "instit/assets/DejaVuSans-subset.ttf",
    "instit/assets/DejaVuSans-ExtraLight-subset.ttf",
    "instit/assets/DEJAVU-LICENSE.txt",
)


def _build(kind: str, project: Path, out: Path) -> Path:
    """Build one distribution of ``project`` with this environment's setuptools."""
    code = "import sys; from setuptools import build_meta as b; print(b.build_%s(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code % kind, str(out)], cwd=project, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # a copy of what a clean clone holds, so no build state of this checkout (egg-info) leaks in
    project = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", project / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("dist")
    return {"wheel": _build("wheel", project, out), "sdist": _build("sdist", project, out)}


def test_wheel_holds_the_package_and_its_data(dists):
    names = set(zipfile.ZipFile(dists["wheel"]).namelist())
    for name in RUNTIME_FILES:
        assert name in names, f"{name} is missing from the wheel"
    modules = {n for n in names if n.endswith(".py")}
    sources = {
        p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "instit").rglob("*.py")
    }
    assert modules == sources
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "instit = instit.cli:main" in zipfile.ZipFile(dists["wheel"]).read(entry_points).decode()


def test_sdist_holds_sources_and_data(dists):
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md"} <= names
    for name in RUNTIME_FILES:
        assert f"src/{name}" in names, f"src/{name} is missing from the sdist"


def test_installed_wheel_works_in_a_fresh_venv(dists, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the wheel is installed by unpacking it (what pip does for a pure-Python wheel)
    zipfile.ZipFile(dists["wheel"]).extractall(purelib)
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_test_deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")

    check = """
import json, instit
image, instances = instit.example_image()
marked = instit.draw_marks(image, instances)
print(json.dumps({"file": instit.__file__, "size": list(marked.size), "ids": list(instances.ids),
                  "changed": marked.tobytes() != image.tobytes()}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the wheel's instit
    result = subprocess.run(
        [python, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(purelib), report["file"]  # not the clone's editable copy
    assert report["size"] == [512, 512] and report["ids"] and report["changed"]
