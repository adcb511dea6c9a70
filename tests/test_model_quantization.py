"""Device, dtype and quantization decisions, and which modules bitsandbytes leaves alone."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import BitsAndBytesConfig

from conftest import require_shared
from instit.errors import DependencyError, InstitValueError, NotEnoughMemoryError
from instit.model import InstIt
from instit.model.checkpoint import read_checkpoint
from instit.model.memory import (
    MEMORY_ENV,
    available_memory,
    check_cpu_load,
    count_parameters,
    load_bytes,
    parse_bytes,
)
from instit.model.quantization import (
    SKIP_MODULES,
    bitsandbytes_config,
    resolve_device,
    resolve_dtype,
    resolve_quantization,
)
from instit.model.weights import load_module
from model_checkpoints import ARCHS, TOWER_PREFIX, read_tensors, tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny(tmp_path_factory.mktemp("q") / "qwen")


def test_device_resolution() -> None:
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("cuda:1", cuda_available=True) == "cuda:1"
    assert resolve_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(DependencyError, match=r"no CUDA GPU.*device='cpu'"):
        resolve_device("cuda", cuda_available=False)


@pytest.mark.parametrize(
    ("dtype", "device", "bf16", "expected"),
    [
        ("auto", "cpu", True, "float32"),  # never half precision on the CPU
        ("auto", "cuda", True, "bfloat16"),
        ("auto", "cuda:0", False, "float16"),  # GPUs before Ampere
        ("fp16", "cpu", True, "float16"),  # explicit wins
        ("bf16", "cuda", False, "bfloat16"),
        (torch.float32, "cuda", True, "float32"),
        ("torch.bfloat16", "cpu", True, "bfloat16"),
        ("half", "cuda", True, "float16"),
    ],
)
def test_dtype_resolution(dtype: object, device: str, bf16: bool, expected: str) -> None:
    assert resolve_dtype(dtype, device, bf16_supported=bf16) == expected


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(InstitValueError, match="dtype='int8' is not supported"):
        resolve_dtype("int8")


@pytest.mark.parametrize(
    ("mode", "device", "bnb", "expected"),
    [
        ("auto", "cuda", True, "4bit"),
        ("auto", "cuda", False, None),  # no bitsandbytes: full precision, no error
        ("auto", "cpu", True, None),
        (None, "cuda", True, None),
        ("4bit", "cuda:0", True, "4bit"),
        ("8bit", "cuda", True, "8bit"),
        ("4bit", "cpu", True, "4bit"),  # bitsandbytes' CPU backend
        ("8bit", "cpu", True, "8bit"),
    ],
)
def test_quantization_decisions(mode: object, device: str, bnb: bool, expected: object) -> None:
    assert resolve_quantization(mode, device, bitsandbytes_available=bnb) == expected


def test_explicit_quantization_needs_cuda_or_cpu_and_bitsandbytes() -> None:
    with pytest.raises(DependencyError, match=r"needs a CUDA GPU or the CPU.*quantization=None"):
        resolve_quantization("4bit", "mps", bitsandbytes_available=True)
    with pytest.raises(DependencyError, match=r"pip install bitsandbytes"):
        resolve_quantization("8bit", "cuda", bitsandbytes_available=False)
    with pytest.raises(DependencyError, match=r"pip install bitsandbytes"):
        resolve_quantization("4bit", "cpu", bitsandbytes_available=False)
    custom = BitsAndBytesConfig(load_in_4bit=True)
    assert resolve_quantization(custom, "cuda", bitsandbytes_available=True) is custom
    assert resolve_quantization(custom, "cpu", bitsandbytes_available=True) is custom
    with pytest.raises(DependencyError, match="a BitsAndBytesConfig needs a CUDA GPU or the CPU"):
        resolve_quantization(custom, "xpu", bitsandbytes_available=True)
    with pytest.raises(InstitValueError, match="quantization='int4' is not supported"):
        resolve_quantization("int4", "cuda")


def test_auto_on_the_cpu_is_float32_unquantized(checkpoint: Path) -> None:
    model = InstIt.from_pretrained(checkpoint, device="cpu", progress=False)
    assert read_checkpoint(checkpoint).config["torch_dtype"] == "bfloat16"  # stored in bf16
    assert (model.dtype, model.quantization) == (torch.float32, None)
    assert {p.dtype for p in model.module.parameters()} == {torch.float32}
    assert model.info()["dtype"] == "float32"
    half = InstIt.from_pretrained(checkpoint, device="cpu", dtype="bfloat16", progress=False)
    assert {p.dtype for p in half.module.parameters()} == {torch.bfloat16}


def test_bitsandbytes_configs() -> None:
    four = bitsandbytes_config("4bit", "bfloat16")
    assert four.load_in_4bit and four.bnb_4bit_quant_type == "nf4"
    assert four.bnb_4bit_use_double_quant
    assert four.bnb_4bit_compute_dtype == torch.bfloat16
    assert four.llm_int8_skip_modules == SKIP_MODULES
    eight = bitsandbytes_config("8bit", "float16")
    assert eight.load_in_8bit and eight.llm_int8_skip_modules == SKIP_MODULES
    assert bitsandbytes_config(None, "float32") is None


def test_only_the_language_model_layers_are_quantized(checkpoint: Path) -> None:
    """Real bitsandbytes 4-bit conversion (its CPU backend), through instit's loader."""
    spec = read_checkpoint(checkpoint)
    module = load_module(
        spec,
        400,
        dtype=torch.float32,
        device="cpu",
        quantization_config=bitsandbytes_config("4bit", "float32"),
        progress=False,
    )
    kinds = {name: type(m).__name__ for name, m in module.named_modules()}
    quantized = sorted(n for n, kind in kinds.items() if kind == "Linear4bit")
    plain = sorted(n for n, kind in kinds.items() if kind == "Linear")
    assert quantized and all(n.startswith("model.language_model.layers.") for n in quantized)
    assert len(quantized) == 2 * 7  # q, k, v, o, gate, up, down per decoder layer
    for prefix in SKIP_MODULES:
        assert any(n.startswith(prefix) for n in plain), prefix
    assert all(n.startswith(tuple(SKIP_MODULES)) for n in plain)
    stored = read_tensors(checkpoint)
    tower = module.model.vision_tower.state_dict()
    for name, tensor in tower.items():
        assert torch.equal(tensor, stored[TOWER_PREFIX + name].float()), name


# -- 4-bit and 8-bit on the CPU --------------------------------------------------------------------

QUANTIZED = {"4bit": "Linear4bit", "8bit": "Linear8bitLt"}
# cosine similarity of the next-token logits to float32's (measured: 4-bit 0.87-0.98, 8-bit >0.999;
# an unrelated model scores about 0)
MIN_COSINE = {"4bit": 0.8, "8bit": 0.99}


@pytest.fixture(scope="module", params=["conformance", "own"])
def checkpoints(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list:
    if request.param == "conformance":
        root = require_shared("conformance", "checkpoints")
        return [root / "tiny-qwen2-siglip", root / "tiny-vicuna-clip"]
    folder = tmp_path_factory.mktemp("own")
    return [tiny(folder / arch, arch) for arch in ARCHS]


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_cpu_quantized_loads_answer(checkpoints: list[Path], mode: str) -> None:
    """Both checkpoints load in 4/8-bit on the CPU: only the language model's linear layers are
    quantized, an answer is generated, and the logits stay close to float32's."""
    image = Image.new("RGB", (64, 48), (200, 10, 10))
    question = "What is [1] doing?"
    for folder in checkpoints:
        model = InstIt.from_pretrained(folder, device="cpu", quantization=mode, progress=False)
        assert (model.quantization, model.dtype) == (mode, torch.float32)
        assert model.info()["quantization"] == mode
        kinds = {name: type(m).__name__ for name, m in model.module.named_modules()}
        quantized = [n for n, kind in kinds.items() if kind == QUANTIZED[mode]]
        layers = model.config.text_config.num_hidden_layers
        assert len(quantized) == 7 * layers  # q, k, v, o, gate, up, down
        assert all(n.startswith("model.language_model.layers.") for n in quantized)
        plain = {n for n, kind in kinds.items() if kind == "Linear"}
        assert "lm_head" in plain
        assert "model.multi_modal_projector.linear_1" in plain
        assert any(n.startswith("model.vision_tower.") for n in plain)
        assert plain <= {n for n in kinds if n.startswith(tuple(SKIP_MODULES))}

        answer = model.ask(image, question, max_new_tokens=4)
        assert isinstance(answer.text, str) and answer.question == question
        full = InstIt.from_pretrained(folder, device="cpu", quantization=None, progress=False)
        with torch.no_grad():
            logits = model.module(**model.prepare(image, question)).logits[0, -1]
            reference = full.module(**full.prepare(image, question)).logits[0, -1]
        cosine = torch.nn.functional.cosine_similarity(logits.float(), reference, dim=0)
        assert cosine > MIN_COSINE[mode], (folder.name, float(cosine))
        assert not torch.equal(logits, reference)  # really quantized


_CLEAN_SCRIPT = """
import sys
events = []
sys.addaudithook(
    lambda event, args: events.append(args[:2])
    if event in ("socket.connect", "socket.getaddrinfo") else None
)
from PIL import Image
from instit.model import InstIt
for mode in ("4bit", "8bit"):
    model = InstIt.from_pretrained(sys.argv[1], device="cpu", quantization=mode, progress=False)
    model.ask(Image.new("RGB", (64, 48)), "What is [1]?", max_new_tokens=3, progress=False)
print("network:", events)
"""


def test_cpu_quantization_is_offline_and_quiet(checkpoint: Path) -> None:
    """bitsandbytes' import would ask the Hub for a kernel (AVX512-BF16 CPUs) and log a failure,
    and LLM.int8 warns on every layer call: instit's loads do neither (a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", _CLEAN_SCRIPT, str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "network: []" in result.stdout
    assert result.stderr == ""


# -- the memory check ----------------------------------------------------------------------------


def test_parameter_count_reads_the_headers(checkpoint: Path) -> None:
    spec = read_checkpoint(checkpoint)
    count = count_parameters(spec)
    assert count.total == sum(t.numel() for t in read_tensors(checkpoint).values())
    model = InstIt.from_pretrained(checkpoint, device="cpu", quantization="8bit", progress=False)
    layers = [m for m in model.module.modules() if type(m).__name__ == "Linear8bitLt"]
    assert count.quantized == sum(m.in_features * m.out_features for m in layers)
    assert count.quantized_rows == sum(m.out_features for m in layers)
    assert load_bytes(count, "bfloat16", "4bit") < load_bytes(count, "bfloat16", "8bit")
    assert load_bytes(count, "bfloat16", "8bit") < load_bytes(count, "bfloat16", None)
    assert load_bytes(count, "bfloat16", None) < load_bytes(count, "float32", None)


def _budget(
    checkpoint: Path, fits: tuple[str, str | None], not_fits: tuple[str, str | None]
) -> str:
    """An INSTIT_AVAILABLE_MEMORY value between what ``fits`` and ``not_fits`` need."""
    count = count_parameters(read_checkpoint(checkpoint))
    low, high = load_bytes(count, *fits), load_bytes(count, *not_fits)
    assert low < high
    return str((low + high) // 2)


def test_an_explicit_setting_that_does_not_fit_is_refused(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MEMORY_ENV, _budget(checkpoint, ("bfloat16", None), ("float32", None)))
    with pytest.raises(NotEnoughMemoryError) as caught:
        InstIt.from_pretrained(checkpoint, device="cpu", dtype="float32", quantization=None)
    message = str(caught.value)
    assert re.search(r"as float32 needs about [\d.]+ GiB but [\d.]+ GiB is available", message)
    assert f"({MEMORY_ENV})" in message
    assert 'pass dtype="bfloat16", which needs' in message
    assert "The weights were not read" in message
    monkeypatch.setenv(MEMORY_ENV, _budget(checkpoint, ("bfloat16", "4bit"), ("bfloat16", "8bit")))
    with pytest.raises(
        NotEnoughMemoryError, match=r'pass quantization="4bit" \(dtype="bfloat16"\)'
    ):
        InstIt.from_pretrained(checkpoint, device="cpu", dtype="bfloat16", quantization="8bit")
    monkeypatch.setenv(MEMORY_ENV, "1MiB")
    with pytest.raises(NotEnoughMemoryError, match="even the smallest setting needs"):
        InstIt.from_pretrained(checkpoint, device="cpu")


def test_the_refusal_suggests_installing_bitsandbytes(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MEMORY_ENV, _budget(checkpoint, ("bfloat16", "4bit"), ("bfloat16", "8bit")))
    with pytest.raises(NotEnoughMemoryError, match=r"4bit.*pip install bitsandbytes"):
        check_cpu_load(
            read_checkpoint(checkpoint),
            "float32",
            None,
            dtype_fixed=False,
            quantization_fixed=False,
            bitsandbytes_available=False,
        )


@pytest.mark.parametrize(
    ("dtype", "quantization", "fits", "not_fits"),
    [
        # the tiny model needs (least first): bf16+4bit, bf16+8bit, bf16, fp32+4bit, fp32+8bit, fp32
        ("auto", "auto", ("bfloat16", None), ("float32", None)),
        ("auto", "auto", ("bfloat16", "4bit"), ("bfloat16", "8bit")),
        ("float32", "auto", ("float32", "8bit"), ("float32", None)),  # dtype stays float32
        ("float32", "auto", ("float32", "4bit"), ("float32", "8bit")),
        ("auto", None, ("bfloat16", None), ("float32", None)),  # stays unquantized
        ("auto", "4bit", ("bfloat16", "4bit"), ("float32", "4bit")),
    ],
)
def test_auto_picks_the_most_faithful_setting_that_fits(
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    dtype: str,
    quantization: str | None,
    fits: tuple[str, str | None],
    not_fits: tuple[str, str | None],
) -> None:
    monkeypatch.setenv(MEMORY_ENV, _budget(checkpoint, fits, not_fits))
    with caplog.at_level(logging.WARNING, logger="instit.model"):
        model = InstIt.from_pretrained(
            checkpoint, device="cpu", dtype=dtype, quantization=quantization, progress=False
        )
    assert (str(model.dtype).removeprefix("torch."), model.quantization) == fits
    memory = model.info()["memory"]
    assert (memory["dtype"], memory["quantization"]) == fits
    assert memory["available_source"] == MEMORY_ENV
    assert memory["needed_bytes"] <= memory["available_bytes"]
    assert "instead" in memory["reason"]
    assert [r.getMessage() for r in caplog.records] == [memory["reason"]]


def test_auto_keeps_float32_when_it_fits(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="instit.model"):
        model = InstIt.from_pretrained(checkpoint, device="cpu", progress=False)
    memory = model.info()["memory"]
    assert (memory["dtype"], memory["quantization"], memory["reason"]) == ("float32", None, None)
    assert memory["available_source"] in ("available RAM", "cgroup memory limit")
    assert memory["available_bytes"] > memory["needed_bytes"]
    assert json.loads(json.dumps(model.info()))["memory"] == memory
    assert not caplog.records


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16GiB", 16 << 30),
        ("16G", 16 << 30),
        ("16GB", 16 * 10**9),
        ("1.5 gib", 3 << 29),
        ("123", 123),
        ("512MiB", 512 << 20),
        ("8000mb", 8 * 10**9),
    ],
)
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_a_bad_memory_budget_is_refused(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(InstitValueError, match=r"INSTIT_AVAILABLE_MEMORY='lots' is not a size"):
        InstIt.from_pretrained(checkpoint, device="cpu")
    monkeypatch.setenv(MEMORY_ENV, "12 parsecs")
    with pytest.raises(InstitValueError, match="'16GiB'"):
        available_memory()
