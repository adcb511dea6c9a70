"""The conformance fixtures are complete, current and never silently skipped.

* the case list the tests use equals every checkpoint's ``manifest.json`` (``../shared`` and the
  vendored copy), so a new golden case cannot be ignored;
* the vendored compact set is exactly what ``tests/fixtures/make_conformance_subset.py`` makes
  from ``../shared`` today, stays small, and its PROVENANCE.md states the fixtures' versions;
* from the vendored set alone (a plain clone), every case's prompt ids and visual token counts;
* CI sets ``CI=true`` itself, so a missing ``../shared`` fails instead of skipping.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from instit.model.processing import VisionSpec, image_token_count, video_token_count
from instit.prompting import tokenize_prompt
from reference_specs import CASES, CHECKPOINTS, VENDORED, VENDORED_MEDIA_CASES, load_compact

SCRIPT = REPO / "tests" / "fixtures" / "make_conformance_subset.py"
MAX_VENDORED_BYTES = 5_000_000


def _manifest_cases(root: Path) -> dict[str, list[str]]:
    """``{checkpoint: [case, ...]}`` from each ``cases/<checkpoint>/manifest.json`` in ``root``."""
    found = {}
    for manifest in sorted((root / "cases").glob("*/manifest.json")):
        data = json.loads(manifest.read_text(encoding="utf-8"))
        assert data["checkpoint"] == manifest.parent.name
        found[manifest.parent.name] = [case["case"] for case in data["cases"]]
    return found


def _check_case_lists(root: Path, case_folders: bool) -> None:
    manifests = _manifest_cases(root)
    assert sorted(manifests) == sorted(CHECKPOINTS)
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == sorted(CHECKPOINTS)
    for checkpoint, cases in manifests.items():
        assert len(cases) == len(set(cases)), f"{checkpoint}: a case is listed twice"
        assert sorted(cases) == sorted(CASES), f"{checkpoint}: tests/reference_specs.py CASES"
        if case_folders:
            folders = [p.name for p in (root / "cases" / checkpoint).iterdir() if p.is_dir()]
            assert sorted(folders) == sorted(CASES)


def test_case_list_equals_the_shared_manifests(conformance_dir: Path) -> None:
    _check_case_lists(conformance_dir, case_folders=True)


def test_case_list_equals_the_vendored_manifests() -> None:
    _check_case_lists(VENDORED, case_folders=True)
    assert set(VENDORED_MEDIA_CASES) <= set(CASES)
    media = sorted(p.name for p in (VENDORED / "media").iterdir())
    assert media == sorted(VENDORED_MEDIA_CASES)


def test_a_case_missing_from_the_list_is_caught(tmp_path: Path) -> None:
    """The check above fails for a manifest with one case more (it is not vacuous)."""
    for checkpoint in CHECKPOINTS:
        folder = tmp_path / "cases" / checkpoint
        folder.mkdir(parents=True)
        (tmp_path / "checkpoints" / checkpoint).mkdir(parents=True)
        cases = [{"case": case} for case in (*CASES, "image_64x64")]
        manifest = {"checkpoint": checkpoint, "cases": cases}
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(AssertionError, match="CASES"):
        _check_case_lists(tmp_path, case_folders=False)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_vendored_set_is_what_the_script_makes_from_shared(
    shared_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "conformance"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(shared_dir), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    generated = _files(out)
    assert [f for f in _files(VENDORED) if f != "PROVENANCE.md"] == generated
    for name in generated:
        if name.endswith(".npz"):
            ours, fresh = load_compact(VENDORED / name), load_compact(out / name)
            assert sorted(ours) == sorted(fresh), name
            for key in fresh:
                np.testing.assert_array_equal(ours[key], fresh[key], err_msg=f"{name}: {key}")
        else:
            assert (VENDORED / name).read_bytes() == (out / name).read_bytes(), name


def test_vendored_set_is_small_and_states_its_provenance() -> None:
    size = sum(p.stat().st_size for p in VENDORED.rglob("*") if p.is_file())
    assert size < MAX_VENDORED_BYTES, f"the vendored golden set grew to {size} bytes"
    provenance = (VENDORED / "PROVENANCE.md").read_text(encoding="utf-8")
    versions = json.loads((VENDORED / "VERSIONS.json").read_text(encoding="utf-8"))
    for key in ("llava_next_repo", "llava_next_commit", "torch", "transformers", "pillow"):
        assert str(versions[key]) in provenance, f"PROVENANCE.md does not state {key}"
    assert "make_conformance_subset.py" in provenance


@cache
def _vision(checkpoint: str) -> VisionSpec:
    folder = VENDORED / "checkpoints" / checkpoint
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tower = folder / config["mm_vision_tower"]
    return VisionSpec.from_llava_config(
        config,
        json.loads((tower / "config.json").read_text(encoding="utf-8")),
        preprocessor_config=json.loads((tower / "preprocessor_config.json").read_text()),
    )


@cache
def _tokenizer(checkpoint: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(VENDORED / "checkpoints" / checkpoint)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_vendored_prompt_ids_and_visual_token_counts(checkpoint: str, case: str) -> None:
    """Every case, media or not: the reference's text ids and visual token count, exactly."""
    golden = load_compact(VENDORED / "cases" / checkpoint / case / "golden.npz")
    ids = tokenize_prompt(str(golden["prompt"]), _tokenizer(checkpoint))
    assert ids == golden["input_ids"].tolist()
    if str(golden["modality"]) == "image":
        width, height = golden["image_sizes"][0].tolist()
        count = image_token_count((width, height), _vision(checkpoint))
    else:
        count = video_token_count(int(golden["pixels_shape"][0]), _vision(checkpoint))
    assert count == int(golden["num_visual_tokens"])
    assert len(ids) - 1 + count == int(golden["expanded_seq_len"])


def test_ci_sets_ci_true_before_running_the_tests() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in script if line.strip() and not line.startswith("#")]
    exported = [i for i, line in enumerate(commands) if re.fullmatch(r"export CI=true", line)]
    runs = [i for i, line in enumerate(commands) if "-m pytest" in line]
    assert exported and runs and exported[0] < runs[0], ".ci/run must export CI=true first"
