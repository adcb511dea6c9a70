"""The public model API: prompt, prepare, module, tokenizer, batched generate, stream, encoding."""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import LlavaOnevisionForConditionalGeneration

from instit.model import InstIt
from instit.model.core import EncodedMedia
from instit.model.processing import image_token_count
from instit.testing import make_tiny_checkpoint
from model_checkpoints import image

QUESTIONS = ["What is [1]?", "Describe [2] and its surroundings in detail, please.", "Hi"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> InstIt:
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("api") / "qwen")
    return InstIt.from_pretrained(folder, device="cpu", progress=False)


def test_prompt_prepare_module_tokenizer(model: InstIt) -> None:
    assert isinstance(model.module, LlavaOnevisionForConditionalGeneration)
    assert len(model.tokenizer) == 400
    prompt = model.prompt("What is [1]?")
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "<image>\nWhat is [1]?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "<image>" not in model.prompt("What is [1]?", media=False)

    picture = image(640, 360)
    inputs = model.prepare(picture, "What is [1]?")
    assert set(inputs) == {"input_ids", "attention_mask", "pixel_values", "image_sizes"}
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(model.config.image_token_id) == image_token_count(picture.size, model.vision)
    assert inputs["image_sizes"].tolist() == [[360, 640]]  # (height, width) for transformers
    assert inputs["pixel_values"].shape[-3:] == (3, 384, 384)

    video = model.prepare([image(seed=s) for s in range(3)], "What happens?")
    assert video["pixel_values_videos"].shape == (1, 3, 3, 384, 384)
    assert video["input_ids"][0].tolist().count(model.config.video_token_id) == 3 * 196
    with torch.inference_mode():
        logits = model.module(**video).logits
    assert logits.shape == (1, video["input_ids"].shape[1], 400)
    assert model.info()["vocab_size"] == 400
    assert "qwen_1_5" in repr(model)


def test_batched_generate_with_left_padding_equals_one_by_one(model: InstIt) -> None:
    picture, other = image(seed=1), image(200, 380, seed=2)
    frames = [image(200, 150, seed=s) for s in range(2)]
    media = [picture, other, frames, None, picture]
    prompts = [*QUESTIONS, "Tell me a story about the weather.", "Where is [3]?"]
    batched = model.generate(media, prompts, max_new_tokens=6, batch_size=5)
    pairs = zip(media, prompts, strict=True)
    single = [model.generate([m], [p], max_new_tokens=6)[0] for m, p in pairs]
    assert batched == single
    assert len(set(single)) > 1  # the answers depend on the input


def test_stream_yields_the_generated_text(model: InstIt) -> None:
    picture = image(seed=3)
    chunks = list(model.stream(picture, QUESTIONS[1], max_new_tokens=8))
    assert chunks and all(isinstance(c, str) and c for c in chunks)
    assert "".join(chunks) == model.generate([picture], [QUESTIONS[1]], max_new_tokens=8)[0]
    answer = model.ask(picture, QUESTIONS[1], max_new_tokens=8, stream=True)
    assert "".join(answer) == "".join(chunks)


class TowerCalls:
    """Counts the vision tower's forward passes."""

    def __init__(self, model: InstIt) -> None:
        self.count = 0
        self.handle = model.module.model.vision_tower.register_forward_hook(self._hook)

    def _hook(self, *args: object) -> None:
        self.count += 1


def test_several_questions_on_one_image_encode_it_once(model: InstIt) -> None:
    picture = image(seed=4)
    calls = TowerCalls(model)
    try:
        answers = model.ask(picture, QUESTIONS, max_new_tokens=2)
        assert calls.count == 1 and len(answers) == 3
        model.generate([picture] * 3, QUESTIONS, max_new_tokens=2)
        assert calls.count == 2
        encoded = model.encode_media(picture)
        assert isinstance(encoded, EncodedMedia) and calls.count == 3
        reused = model.generate([encoded] * 3, QUESTIONS, max_new_tokens=2)
        assert calls.count == 3
        model.generate([image(seed=4) for _ in range(3)], QUESTIONS, max_new_tokens=2)
        assert calls.count == 6  # distinct objects are encoded separately
    finally:
        calls.handle.remove()
    assert reused == model.generate([picture] * 3, QUESTIONS, max_new_tokens=2)


def _anonymous_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_loading_keeps_no_second_copy_of_the_weights(tmp_path: Path) -> None:
    """Peak anonymous memory while loading stays below 1.3x the loaded weights."""
    folder = make_tiny_checkpoint(tmp_path / "wide", hidden_size=768, num_layers=4)
    for dtype in ("float32", "bfloat16"):  # converted from bf16 / used as stored
        gc.collect()
        base, peak, done = _anonymous_rss(), [0], threading.Event()

        def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _anonymous_rss())
                time.sleep(0.001)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            loaded = InstIt.from_pretrained(folder, device="cpu", dtype=dtype, progress=False)
        finally:
            done.set()
            sampler.join()
        weights = sum(p.numel() * p.element_size() for p in loaded.module.parameters())
        assert weights > 60e6 if dtype == "float32" else weights > 30e6
        assert peak[0] - base <= 1.3 * weights, (dtype, (peak[0] - base) / weights)
        del loaded


def test_progress_counts_the_tokens_as_they_come(
    model: InstIt, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    picture = image(seed=5)
    quiet = model.generate([picture], [QUESTIONS[0]], max_new_tokens=6)
    assert capsys.readouterr().err == ""  # progress=False is the default of the low-level call
    shown = model.generate([picture], [QUESTIONS[0]], max_new_tokens=6, progress=True)
    assert shown == quiet  # the bar changes nothing in the output
    bar = capsys.readouterr().err.rsplit("\r", 1)[-1]
    count = re.search(r"generating: 100%.* (\d+)/(\d+) ", bar)
    assert count and count[1] == count[2] and 1 <= int(count[1]) <= 6, bar
    assert "token" in bar
    # several batches: one bar each, named by the batch
    model.generate([picture] * 3, QUESTIONS, max_new_tokens=3, batch_size=2, progress=True)
    err = capsys.readouterr().err
    assert "batch 1/2" in err and "batch 2/2" in err and "token" in err
