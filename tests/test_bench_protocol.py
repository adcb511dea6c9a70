"""The bench prompts are the benchmark's own strings, composed exactly as the reference does."""

from __future__ import annotations

import json

import pytest

from instit.bench.protocol import JUDGE_PROMPTS, MEDIA_TOKEN, PROMPTS, compose_prompt
from instit.errors import InstitValueError


def test_prompts_equal_the_published_strings(reference_dir):
    published = json.loads((reference_dir / "bench_prompts.json").read_text(encoding="utf-8"))
    for split in ("image", "video"):
        for fmt in ("mc", "oe"):
            entry = published[f"{split}_{fmt}"]
            assert PROMPTS[(split, fmt)].pre == entry["pre_prompt"]
            assert PROMPTS[(split, fmt)].post == entry["post_prompt"]
        assert JUDGE_PROMPTS[split] == published["gpt_eval"][split]


def test_prompt_quirks_are_kept():
    # trailing spaces, curly quotes and the doubled apostrophes are part of the benchmark
    assert PROMPTS[("image", "mc")].post == "The best answer is: "
    assert "'[1]'', '[2]''" in PROMPTS[("image", "mc")].pre
    assert "“[8]”" in PROMPTS[("video", "oe")].pre
    assert JUDGE_PROMPTS["image"].endswith("input test items: \n")
    assert JUDGE_PROMPTS["video"].endswith("input test items:\n")


def test_mc_composition():
    text = compose_prompt("video", "mc", "Q?", ("a", "b", "c", "d"))
    pair = PROMPTS[("video", "mc")]
    assert text == f"{pair.pre}\nQ?\nA. a\nB. b\nC. c\nD. d\n{pair.post}"


def test_oe_composition_puts_post_prompt_before_question():
    text = compose_prompt("image", "oe", "What is [1] doing?")
    pair = PROMPTS[("image", "oe")]
    assert text == f"{pair.pre}\n{pair.post}\nWhat is [1] doing?"


def test_media_token_goes_first():
    text = compose_prompt("image", "oe", "Q?", media_token=True)
    assert text.startswith(MEDIA_TOKEN + "\n" + PROMPTS[("image", "oe")].pre)


def test_bad_inputs_name_the_fix():
    with pytest.raises(InstitValueError, match="four choices"):
        compose_prompt("image", "mc", "Q?", ("a", "b"))  # type: ignore[arg-type]
    with pytest.raises(InstitValueError, match="'image' or 'video'"):
        compose_prompt("audio", "oe", "Q?")  # type: ignore[arg-type]
