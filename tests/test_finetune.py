"""instit.finetune: labels, inputs equal to inference's, learning, adapters, resume, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import instit
from instit.errors import (
    CheckpointError,
    DatasetError,
    InstancesError,
    InstitValueError,
    ModelInputError,
)
from instit.model.core import InstIt
from instit.testing import make_tiny_checkpoint
from instit.training import IGNORE_INDEX, conversation_ids, finetune, training_features
from model_checkpoints import ARCHS

TARGET = "A red ball."
QUESTION = "What is [1]?"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune-ckpt")
    return {arch: make_tiny_checkpoint(root / arch, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def models(checkpoints) -> dict[str, InstIt]:
    return {
        arch: InstIt.from_pretrained(path, device="cpu", progress=False)
        for arch, path in checkpoints.items()
    }


def _image() -> tuple[Image.Image, instit.Instances]:
    image, instances = instit.example_image()
    masks = {
        i: np.asarray(Image.fromarray(m).resize((128, 128), Image.Resampling.NEAREST))
        for i, m in zip(instances.ids, instances.masks(), strict=True)
    }
    return image.resize((128, 128)), instit.Instances.from_masks(masks)


def _frames(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(count)
    return [
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)) for _ in range(count)
    ]


@pytest.mark.parametrize("arch", ARCHS)
def test_only_answers_and_their_end_tokens_are_supervised(models, arch):
    model = models[arch]
    turns = [(QUESTION, TARGET), ("And <2>?", "It rolls away."), ("Why?", "A kick.")]
    ids, labels = conversation_ids(model, turns)
    end = "<|im_end|>" if arch == "qwen2-siglip" else "</s>"
    # supervised labels equal their ids, and form one run per answer
    assert all(label in (IGNORE_INDEX, t) for t, label in zip(ids, labels, strict=True))
    runs: list[list[int]] = [[]]
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    runs = [run for run in runs if run]
    end_id = model.tokenizer.convert_tokens_to_ids(end)
    assert len(runs) == len(turns)
    for run, (_, answer) in zip(runs, turns, strict=True):
        assert run[-1] == end_id  # the end-of-turn token, and nothing after it (ChatML's "\n")
        assert model.tokenizer.decode(run[:-1]).strip() == answer
    assert ids[-1] != end_id if arch == "qwen2-siglip" else ids[-1] == end_id


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["image", "video"])
def test_training_inputs_equal_inference_inputs(models, arch, kind):
    model = models[arch]
    media = _image()[0] if kind == "image" else _frames(3)
    features = training_features(model, media, [(QUESTION, TARGET), ("More?", "No.")])
    reference = model.prepare(media, QUESTION)
    prompt = reference["input_ids"][0]
    assert torch.equal(features["input_ids"][: len(prompt)], prompt)  # the prompt, token for token
    assert (features["labels"][: len(prompt)] == IGNORE_INDEX).all()  # incl. the visual tokens
    pixels = "pixel_values" if kind == "image" else "pixel_values_videos"
    assert torch.equal(features[pixels], reference[pixels][0])
    if kind == "image":
        assert torch.equal(features["image_sizes"], reference["image_sizes"][0])
    supervised = features["labels"] != IGNORE_INDEX
    assert torch.equal(features["labels"][supervised], features["input_ids"][supervised])


def test_marks_are_drawn_as_at_inference(models, tmp_path):
    """An item's instances are drawn with instit's renderer: the training pixels equal the pixels
    of draw_marks(image, instances)."""
    from instit.training.data import read_conversations
    from instit.training.finetune import _materialise

    model = models["qwen2-siglip"]
    image, instances = _image()
    (conversation,) = read_conversations([(image, instances, [(QUESTION, TARGET)])])
    seen, _ = _materialise(model, conversation, max_frames=8)
    assert np.array_equal(np.asarray(seen), np.asarray(instit.draw_marks(image, instances)))


def _greedy(model: InstIt, image: Image.Image) -> str:
    return model.ask(image, QUESTION, max_new_tokens=8).text


def test_lora_learns_a_caption_and_the_adapter_reloads(checkpoints, tmp_path):
    model = InstIt.from_pretrained(checkpoints["qwen2-siglip"], device="cpu", progress=False)
    image, instances = _image()
    marked = instit.draw_marks(image, instances)
    assert _greedy(model, marked) != TARGET
    out = finetune(
        model,
        [(image, instances, [(QUESTION, TARGET)])],
        tmp_path / "adapter",
        learning_rate=1e-2,
        max_steps=10,
        progress=False,
        seed=0,
    )
    assert _greedy(model, marked) == TARGET
    manifest = json.loads((out / "instit_finetune.json").read_text())
    assert manifest["steps"] == 10 and manifest["losses"][-1] < manifest["losses"][0] / 10
    assert manifest["method"] == "lora" and manifest["template"] == "qwen_1_5"
    assert (out / "adapter_model.safetensors").is_file()
    assert not list(out.glob("*.bin"))

    inputs = model.prepare(marked, QUESTION)
    with torch.no_grad():
        trained = model.module(**inputs).logits[0, -1]
    reloaded = InstIt.from_pretrained(
        checkpoints["qwen2-siglip"], device="cpu", progress=False, adapter=out
    )
    assert reloaded.info()["adapter"] == {"path": str(out), "merged": False}
    with torch.no_grad():
        assert torch.allclose(reloaded.module(**inputs).logits[0, -1], trained, atol=1e-5)
    merged = InstIt.from_pretrained(
        checkpoints["qwen2-siglip"], device="cpu", progress=False, adapter=out, merge=True
    )
    assert not any("lora" in name for name, _ in merged.module.named_modules())
    with torch.no_grad():
        assert torch.allclose(merged.module(**inputs).logits[0, -1], trained, atol=1e-4)
    assert _greedy(merged, marked) == TARGET

    # the export keeps the checkpoint's stored dtype (bfloat16) and merges in it: loaded by plain
    # transformers it gives the logits of the same merge done by instit in bfloat16
    from transformers import AutoModelForImageTextToText

    exported = instit.convert(checkpoints["qwen2-siglip"], tmp_path / "hf", adapter=out)
    plain = AutoModelForImageTextToText.from_pretrained(exported).eval()
    merged16 = InstIt.from_pretrained(
        checkpoints["qwen2-siglip"], device="cpu", dtype="bfloat16", adapter=out, merge=True
    )
    inputs16 = merged16.prepare(marked, QUESTION)
    with torch.no_grad():
        expected = merged16.module(**inputs16).logits[0, -1]
        # the export keeps the embedding's padded rows, instit's logits stop at len(tokenizer)
        assert torch.equal(plain(**inputs16).logits[0, -1, : len(expected)], expected)


def test_resume_continues_the_run_and_refuses_other_data(checkpoints, tmp_path):
    image, instances = _image()
    data = [(image, instances, [(QUESTION, TARGET)])]
    path = checkpoints["vicuna-clip"]
    out = tmp_path / "run"
    finetune(path, data, out, max_steps=2, save_steps=1, progress=False, seed=0)
    first = json.loads((out / "instit_finetune.json").read_text())["losses"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "checkpoint-1",
        "checkpoint-2",
    ]
    with pytest.raises(InstitValueError, match="resume=True"):
        finetune(path, data, out, max_steps=3, progress=False)
    other = [(image, instances, [(QUESTION, "Something else.")])]
    with pytest.raises(InstitValueError, match="data_fingerprint"):
        finetune(path, other, out, max_steps=3, resume=True, progress=False)
    finetune(path, data, out, max_steps=3, save_steps=1, resume=True, progress=False, seed=0)
    manifest = json.loads((out / "instit_finetune.json").read_text())
    # steps 1-2 come from the checkpoint's history, step 3 ran now
    assert manifest["steps"] == 3 and manifest["losses"][:2] == first
    assert len(manifest["losses"]) == 3


def _dataset_files(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "media"
    images.mkdir()
    _image()[0].save(images / "a.png")
    folder = images / "clip"
    folder.mkdir()
    for i, frame in enumerate(_frames(2)):
        frame.save(folder / f"frame_{i}.png")
    records = [
        {
            "image_id": 1,
            "instance_level_caption": {"1": "a ball", "2": "a dog"},
            "image_level_caption": "A dog and [1].",
            "image_path": "a.png",
        }
    ]
    dataset = tmp_path / "inst_it_dataset_image.json"
    dataset.write_text(json.dumps(records))
    llava = tmp_path / "sft.jsonl"
    line = {
        "id": "v",
        "video": "clip",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat happens at <2>?"},
            {"from": "gpt", "value": "[1] jumps."},
        ],
    }
    llava.write_text(json.dumps(line) + "\n")
    return dataset, llava


def test_reads_inst_it_dataset_and_llava_jsonl(tmp_path, models):
    from instit.dataset.to_llava import PROMPT_IMAGE_INSTANCES
    from instit.training import read_conversations

    dataset, llava = _dataset_files(tmp_path)
    image, video = read_conversations([dataset, llava], media_root=tmp_path / "media")
    assert image.turns[0] == (PROMPT_IMAGE_INSTANCES, "[1]: a ball\n[2]: a dog")
    assert image.media == tmp_path / "media" / "a.png" and image.instances is None
    assert video.turns == (("What happens at <2>?", "[1] jumps."),)
    features = training_features(models["vicuna-clip"], _frames(2), video.turns)
    assert "pixel_values_videos" in features


def test_cli_trains_from_a_jsonl_file(checkpoints, tmp_path):
    _, llava = _dataset_files(tmp_path)
    out = tmp_path / "cli-out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "instit", "finetune", str(checkpoints["vicuna-clip"]), str(llava),
         "--media-root", str(tmp_path / "media"), "-o", str(out), "--max-steps", "1",
         "--no-progress", "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["steps"] == 1 and report["output"] == str(out)
    again = subprocess.run(
        [sys.executable, "-m", "instit", "finetune", str(checkpoints["vicuna-clip"]), str(llava),
         "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr


def test_bad_input_is_refused_before_training(checkpoints, models, tmp_path):
    image, instances = _image()
    model = models["qwen2-siglip"]
    out = tmp_path / "never"
    with pytest.raises(InstancesError):  # masks of another size than the image
        finetune(model, [(image.resize((64, 64)), instances, [(QUESTION, TARGET)])], out)
    with pytest.raises(InstitValueError, match="no conversation"):
        finetune(model, [], out)
    with pytest.raises(InstitValueError, match="question, answer"):
        finetune(model, [(image, None, [(QUESTION, "")])], out)
    with pytest.raises(DatasetError, match="does not exist"):
        finetune(model, tmp_path / "missing.jsonl", out)
    with pytest.raises(InstitValueError, match="max_frames"):
        finetune(model, [(_frames(5), None, [(QUESTION, TARGET)])], out, max_frames=4)
    with pytest.raises(ModelInputError, match="context"):
        finetune(model, [(_frames(3), None, [(QUESTION, "word " * 40000)])], out)
    with pytest.raises(InstitValueError, match="target"):
        finetune(model, [(image, None, [(QUESTION, TARGET)])], out, target="everything")
    assert not out.exists()
    no_tokenizer = tmp_path / "no-tok"
    make_tiny_checkpoint(no_tokenizer, "qwen2-siglip")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="tokenizer"):
        finetune(no_tokenizer, [(image, None, [(QUESTION, TARGET)])], out)
    with pytest.raises(CheckpointError, match="does not exist"):
        InstIt.from_pretrained(checkpoints["qwen2-siglip"], adapter=tmp_path / "nope")


def test_a_pickled_adapter_is_never_loaded(checkpoints, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    (folder / "adapter_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(CheckpointError, match="never loads"):
        InstIt.from_pretrained(checkpoints["qwen2-siglip"], adapter=folder)


def test_two_processes_under_accelerate_train_one_adapter(checkpoints, tmp_path):
    _, llava = _dataset_files(tmp_path)
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "instit", "finetune", str(checkpoints["vicuna-clip"]), str(llava), str(llava),
         "--media-root", str(tmp_path / "media"), "-o", str(out), "--max-steps", "1",
         "--no-progress"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.loads((out / "instit_finetune.json").read_text())
    assert manifest["steps"] == 1 and manifest["conversations"] == 2
    assert (out / "adapter_model.safetensors").is_file()
    reloaded = InstIt.from_pretrained(
        checkpoints["vicuna-clip"], device="cpu", progress=False, adapter=out
    )
    assert reloaded.adapter == {"path": str(out), "merged": False}


def test_qlora_trains_on_a_4bit_base_with_tower_projector_and_head_unquantized(
    checkpoints, tmp_path
):
    import bitsandbytes as bnb

    model = InstIt.from_pretrained(
        checkpoints["qwen2-siglip"], quantization="4bit", device="cpu", progress=False
    )
    image, instances = _image()
    out = finetune(
        model, [(image, instances, [(QUESTION, TARGET)])], tmp_path / "q", method="qlora",
        max_steps=1, progress=False,
    )  # fmt: skip
    assert json.loads((out / "instit_finetune.json").read_text())["steps"] == 1
    modules = dict(model.module.named_modules())
    q_proj = modules["model.language_model.layers.0.self_attn.q_proj"]
    assert isinstance(q_proj.base_layer, bnb.nn.Linear4bit) and hasattr(q_proj, "lora_A")
    for name, module in modules.items():
        if name.startswith(("model.vision_tower", "model.multi_modal_projector", "lm_head")):
            assert not isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)), name
    assert isinstance(modules["lm_head"], torch.nn.Linear)
    assert isinstance(model.ask(image, QUESTION, instances=instances, max_new_tokens=3).text, str)
    with pytest.raises(InstitValueError, match="unquantized base"):
        finetune(model, [(image, None, [(QUESTION, TARGET)])], tmp_path / "x", method="lora")


def test_importing_peft_through_instit_reaches_no_network():
    """peft imports bitsandbytes, which on AVX512-BF16 CPUs asks the Hub for a kernel: instit
    imports bitsandbytes first, its own way."""
    code = """
import sys
calls = []
sys.addaudithook(lambda event, args: calls.append(event) if event.startswith("socket.") else None)
from instit.model.adapters import import_peft
import_peft()
print(sorted(set(calls)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]" and done.stderr == ""


def test_a_damaged_jsonl_line_is_a_dataset_error(tmp_path):
    from instit.training import read_conversations

    for line in ('{"image": "a.png", "id": ' + "1" * 5000 + "}", "[" * 100_000, "{oops"):
        data = tmp_path / "sft.jsonl"
        data.write_text(line + "\n")
        with pytest.raises(DatasetError, match=r"sft\.jsonl line 1 is not valid JSON"):
            read_conversations(data)


def test_targets_choose_what_trains(checkpoints, tmp_path):
    """Regression: target="vision" named a module path transformers 5 does not have."""
    image, instances = _image()
    data = [(image, instances, [(QUESTION, TARGET)])]
    model = InstIt.from_pretrained(checkpoints["vicuna-clip"], device="cpu", progress=False)
    finetune(model, data, tmp_path / "lora", target=["projector", "vision"], max_steps=1,
             progress=False)  # fmt: skip
    lora = {n.rsplit(".", 1)[0] for n, _ in model.module.named_modules() if n.endswith("lora_A")}
    layers = len(model.module.model.vision_tower.encoder.layers)
    assert {n for n in lora if n.startswith("model.multi_modal_projector.")} == {
        "model.multi_modal_projector.linear_1",
        "model.multi_modal_projector.linear_2",
    }
    tower = {n for n in lora if n.startswith("model.vision_tower.encoder.layers.")}
    assert len(tower) == 6 * min(layers, 12)  # q, k, v, out, fc1, fc2 of the last layers
    assert lora == tower | {
        "model.multi_modal_projector.linear_1",
        "model.multi_modal_projector.linear_2",
    }

    full = InstIt.from_pretrained(checkpoints["vicuna-clip"], device="cpu", progress=False)
    before = {n: p.detach().clone() for n, p in full.module.named_parameters()}
    finetune(full, data, tmp_path / "full", method="full", target="projector", max_steps=1,
             learning_rate=1e-2, progress=False)  # fmt: skip
    changed = {n for n, p in full.module.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("model.multi_modal_projector.") for n in changed)
    assert (tmp_path / "full" / "model" / "config.json").is_file()
