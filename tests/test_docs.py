"""Every ```python block in README.md and docs/*.md runs as written.

The blocks of one page run in order in one namespace (as a reader would paste them), in a
temporary folder prepared by one shared prelude (:func:`prelude`):

* hub ids of the released checkpoints are swapped for a tiny random checkpoint (the only edit
  made to a block's text), and generation is capped at a few new tokens (random weights never
  stop on their own);
* the files the pages name exist there: ``clip.mp4``, ``photo.jpg`` and its instances,
  ``marked.png``, ``ckpt/`` (a checkpoint folder), ``Inst-It-Bench/`` (a tiny bench),
  ``bench/video_0001/frame_*.jpg``, ``inst_it_dataset_video_21k.json``;
* the judge's endpoint is a real HTTP server on 127.0.0.1 (``OPENAI_BASE_URL``), with a key in
  ``OPENAI_API_KEY``.

A block that must not run is fenced ```python no-run (visible on the page); there are very few,
and the test says which. A block that raises fails the suite (checked below by running a
broken copy of a real block).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from test_bench_judge import FakeJudgeServer, serving
from video_clips import write_clip

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
HUB_IDS = ("Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B", "Inst-IT/LLaVA-Next-Inst-It-Vicuna-7B")
MAX_NEW_TOKENS = 6
NO_RUN = "no-run"
# every block fenced ```python no-run, with the reason it cannot run in a test
ALLOWED_NO_RUN: dict[str, str] = {}
FENCE = re.compile(r"^```(python[^\n]*)\n(.*?)^```[ \t]*$", flags=re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    info: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The ```python blocks of a page, with the line their code starts on."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(page, text[: m.start()].count("\n") + 2, m.group(1).strip(), m.group(2))
        for m in FENCE.finditer(text)
    ]


def run_page(page_blocks: list[Block], namespace: dict) -> None:
    """Run a page's blocks in order in ``namespace``; a failure names the block."""
    for block in page_blocks:
        if NO_RUN in block.info.split():
            continue
        code = block.code
        for hub_id in HUB_IDS:
            code = code.replace(f'"{hub_id}"', repr(str(namespace["__tiny_checkpoint__"])))
        # padded with blank lines so tracebacks show the page's own line numbers
        compiled = compile("\n" * (block.line - 1) + code, str(block.page), "exec")
        exec(compiled, namespace)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the pages name, made once for the module (each page gets a copy)."""
    import instit
    from instit.bench import make_tiny_bench
    from instit.testing import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("docs")
    tiny = make_tiny_checkpoint(root / "tiny", "qwen2-siglip")
    shutil.copytree(tiny, root / "ckpt")
    write_clip(root / "clip.mp4", 450, rate=10)  # 45 s
    image, instances = instit.example_image()
    image.save(root / "photo.jpg")
    (root / "photo_instances.json").write_text(instances.to_json(), encoding="utf-8")
    instit.draw_marks(image, instances).save(root / "marked.png")
    make_tiny_bench(root / "Inst-It-Bench", num_questions=4, frames_per_video=2)
    frames = root / "bench" / "video_0001"
    frames.mkdir(parents=True)
    for t in range(4):
        instit.draw_marks(image, instances).resize((64, 64)).save(frames / f"frame_{t}.jpg")
    from test_dataset import image_record, video_record

    records = [video_record(1), video_record(2)]
    (root / "inst_it_dataset_video_21k.json").write_text(json.dumps(records), encoding="utf-8")
    (root / "inst_it_dataset_image_51k.json").write_text(
        json.dumps([image_record(1)]), encoding="utf-8"
    )
    return root


@pytest.fixture
def judge_server() -> Iterator[FakeJudgeServer]:
    with serving() as server:
        yield server


@pytest.fixture
def prelude(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judge_server) -> dict:
    """A fresh copy of the workspace as the working folder, capped generation, a local judge."""
    from instit.model.core import InstIt

    folder = tmp_path / "work"
    shutil.copytree(workspace, folder)
    monkeypatch.chdir(folder)
    host, port = judge_server.server_address[:2]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://{host}:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test")
    generate, stream = InstIt.generate, InstIt.stream

    def capped_generate(self: InstIt, media, prompts, **kwargs):
        kwargs["max_new_tokens"] = min(kwargs.get("max_new_tokens", 256), MAX_NEW_TOKENS)
        return generate(self, media, prompts, **kwargs)

    def capped_stream(self: InstIt, media, prompt, **kwargs):
        kwargs["max_new_tokens"] = min(kwargs.get("max_new_tokens", 256), MAX_NEW_TOKENS)
        return stream(self, media, prompt, **kwargs)

    monkeypatch.setattr(InstIt, "generate", capped_generate)
    monkeypatch.setattr(InstIt, "stream", capped_stream)
    return {"__name__": "__docs__", "__tiny_checkpoint__": folder / "ckpt"}


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
RUNNABLE_PAGES = [page for page in PAGES if any(b.page == page for b in ALL_BLOCKS)]


def test_blocks_are_found_and_no_run_blocks_are_few_and_listed() -> None:
    for page in PAGES:  # the fence pattern misses none (an unclosed or indented fence, say)
        opened = re.findall(r"^```python", page.read_text(encoding="utf-8"), flags=re.M)
        assert len(opened) == len(blocks(page)), page
    assert len(ALL_BLOCKS) >= 15
    assert {b.info.split()[0] for b in ALL_BLOCKS} == {"python"}
    skipped = {b.name for b in ALL_BLOCKS if NO_RUN in b.info.split()}
    assert skipped == set(ALLOWED_NO_RUN), "a ```python no-run block needs a reason here"
    assert len(skipped) <= 3
    # a python fence holds Python: signatures belong in text fences
    for block in ALL_BLOCKS:
        compile(block.code, block.name, "exec")


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_runs(page: Path, prelude: dict) -> None:
    run_page([b for b in ALL_BLOCKS if b.page == page], prelude)


def test_a_broken_block_fails_the_suite(prelude: dict) -> None:
    """The runner is not vacuous: a real block with one name misspelt raises, on its own line."""
    [block] = [b for b in ALL_BLOCKS if b.page.name == "marks.md"][:1]
    broken = Block(block.page, block.line, block.info, block.code.replace("instit.", "insitt.", 1))
    with pytest.raises(NameError, match="insitt") as caught:
        run_page([broken], prelude)
    offset = next(i for i, line in enumerate(broken.code.splitlines()) if "insitt." in line)
    [entry] = [e for e in caught.traceback if str(e.path) == str(block.page)]
    assert entry.lineno + 1 == block.line + offset  # reported at the page's own line


def test_video_page_indices_are_what_the_sampler_gives() -> None:
    """video.md's comment on the indices of 8 frames from an 1800-frame clip is true."""
    from instit.video import uniform_positions

    text = (REPO / "docs" / "video.md").read_text(encoding="utf-8")
    indices = [int(i) for i in uniform_positions(1800, 8)]
    shown = f"[{indices[0]}, {indices[1]}, {indices[2]}, ..., {indices[-1]}]"
    assert shown in text, f"docs/video.md should show {shown}"


def test_video_page_tracks_are_drawn(prelude: dict) -> None:
    """The marks example of video.md keys tracks on sampled frames, so they are drawn."""
    page = REPO / "docs" / "video.md"
    run_page(blocks(page), prelude)
    video, marked = prelude["video"], prelude["marked"]
    changed = [
        t
        for t, (a, b) in enumerate(zip(video.frames, marked.frames, strict=True), start=1)
        if not np.array_equal(np.asarray(a), np.asarray(b))
    ]
    assert changed == [1, 3]
