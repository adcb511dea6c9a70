"""The README's promises hold: its API tour runs, its commands are the ones CI uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from video_clips import write_clip

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
DEFAULT_MODEL = "Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)


REPLY = "[1]: a person at <2>\n[2]: a flag at <3>-<4>\n[3]: a rover\n[4]: a rock"


def test_tour_runs_on_a_tiny_checkpoint(tmp_path: Path, monkeypatch, capsys):
    """The tour runs as written on a tiny checkpoint, and what it prints is what it promises.

    The tiny model really generates (4 tokens, to keep the test quick) for every call; its
    random-weight text is then replaced by ``REPLY``, which names instances and frames, so the
    parsing the tour shows ([ID] references, captions per instance, <t> to seconds) is checked.
    """
    from instit.model.core import InstIt
    from instit.testing import make_tiny_checkpoint

    generate = InstIt.generate
    calls: list[int] = []

    def generate_then_reply(self: InstIt, media, prompts, **kwargs) -> list[str]:
        texts = generate(self, media, prompts, **{**kwargs, "max_new_tokens": 4})
        calls.append(len(texts))
        return [REPLY] * len(texts)

    monkeypatch.setattr(InstIt, "generate", generate_then_reply)

    (tour,) = re.findall(r"## A 10-line tour\n\n```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(tour.strip().splitlines()) == 10
    model = make_tiny_checkpoint(tmp_path / "tiny", "qwen2-siglip")
    write_clip(tmp_path / "clip.mp4", 20, rate=10)
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_MODEL in tour
    code = tour.replace(f'"{DEFAULT_MODEL}"', f'"{model}", device="cpu"')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert calls and all(n > 0 for n in calls)  # the model ran for every question
    marked, instances = namespace["marked"], namespace["instances"]
    assert marked.size == namespace["image"].size and list(instances.ids) == [1, 2, 3, 4]
    assert marked.tobytes() != namespace["image"].tobytes()  # the marks were drawn
    description = namespace["description"]
    assert description.instance_captions == {
        1: "a person at <2>",
        2: "a flag at <3>-<4>",
        3: "a rover",
        4: "a rock",
    }
    assert description.missing_ids == [] and description.extra_ids == []
    video = namespace["video"]
    assert len(video.frames) == 8 == len(video.timestamps)
    answer_line, seconds_line = capsys.readouterr().out.strip().rsplit("\n", 1)
    assert answer_line == f"{REPLY} [1, 2, 3, 4]"
    assert namespace["answer"].instance_ids == [1, 2, 3, 4]
    # frames <2>, <3>, <4> of the 8 sampled, as seconds
    assert eval(seconds_line) == pytest.approx([video.timestamps[t - 1] for t in (2, 3, 4)])


def test_set_up_commands_are_what_ci_runs():
    main_job, tests = _bash_blocks()[:2]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.strip() in ci
    assert main_job.strip().startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert (REPO / main_job.strip().split()[-1]).is_file()  # the main job's script exists
