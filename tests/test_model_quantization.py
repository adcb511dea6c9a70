"""Device, dtype and quantization decisions, and which modules bitsandbytes leaves alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BitsAndBytesConfig

from instit.errors import DependencyError, InstitValueError
from instit.model import InstIt
from instit.model.checkpoint import read_checkpoint
from instit.model.quantization import (
    SKIP_MODULES,
    LoadPlan,
    bitsandbytes_config,
    resolve_device,
    resolve_dtype,
    resolve_quantization,
)
from instit.model.weights import load_module
from model_checkpoints import TOWER_PREFIX, read_tensors, tiny


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
    ],
)
def test_quantization_decisions(mode: object, device: str, bnb: bool, expected: object) -> None:
    assert resolve_quantization(mode, device, bitsandbytes_available=bnb) == expected


def test_explicit_quantization_needs_cuda_and_bitsandbytes() -> None:
    with pytest.raises(DependencyError, match=r"needs a CUDA GPU.*quantization=None"):
        resolve_quantization("4bit", "cpu", bitsandbytes_available=True)
    with pytest.raises(DependencyError, match=r"pip install bitsandbytes"):
        resolve_quantization("8bit", "cuda", bitsandbytes_available=False)
    custom = BitsAndBytesConfig(load_in_4bit=True)
    assert resolve_quantization(custom, "cuda", bitsandbytes_available=True) is custom
    with pytest.raises(DependencyError, match="a BitsAndBytesConfig needs a CUDA GPU"):
        resolve_quantization(custom, "cpu", bitsandbytes_available=True)
    with pytest.raises(InstitValueError, match="quantization='int4' is not supported"):
        resolve_quantization("int4", "cuda")


def test_from_pretrained_refuses_quantization_on_the_cpu(checkpoint: Path) -> None:
    for mode in ("4bit", "8bit", BitsAndBytesConfig(load_in_4bit=True)):
        with pytest.raises(DependencyError, match="CUDA GPU"):
            InstIt.from_pretrained(checkpoint, device="cpu", quantization=mode, progress=False)


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
    assert LoadPlan("cuda", "bfloat16", "4bit").to_dict()["quantization"] == "4bit"


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
