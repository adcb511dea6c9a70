"""The README's promises hold: its API tour runs, its commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

from video_clips import write_clip

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)


def test_tour_runs_on_a_tiny_checkpoint(tmp_path: Path, monkeypatch, capsys):
    from instit.model.core import InstIt
    from instit.testing import make_tiny_checkpoint

    generate = InstIt.generate

    def short_generate(self: InstIt, media, prompts, **kwargs):
        # random weights never stop early: cap the answers' length to keep the test quick
        return generate(self, media, prompts, **{**kwargs, "max_new_tokens": 4})

    monkeypatch.setattr(InstIt, "generate", short_generate)

    (tour,) = re.findall(r"## A 10-line tour\n\n```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(tour.strip().splitlines()) == 10
    model = make_tiny_checkpoint(tmp_path / "tiny", "qwen2-siglip")
    write_clip(tmp_path / "clip.mp4", 20, rate=10)
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_MODEL in tour
    code = tour.replace(f'"{DEFAULT_MODEL}"', f'"{model}", device="cpu"')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    marked, instances = namespace["marked"], namespace["instances"]
    assert marked.size == namespace["image"].size and list(instances.ids) == [1, 2, 3, 4]
    assert sorted(namespace["description"].instance_captions) <= [1, 2, 3, 4]
    assert len(namespace["video"].frames) == 8
    answer_line, seconds_line = capsys.readouterr().out.strip().rsplit("\n", 1)
    assert answer_line.endswith(str(namespace["answer"].instance_ids))
    seconds = namespace["video"].timestamps
    assert all(s in seconds for s in eval(seconds_line))  # printed seconds are frame times


def test_set_up_commands_are_what_ci_runs():
    main_job, tests = _bash_blocks()[:2]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.strip() in ci
    assert main_job.strip().startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert (REPO / main_job.strip().split()[-1]).is_file()  # the main job's script exists
