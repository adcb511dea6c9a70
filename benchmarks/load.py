"""Checkpoint loading: instit on LLaVA-NeXT's layout vs plain transformers on its own layout.

    .venv/bin/python benchmarks/load.py                 # ~1B parameters, ~8 min on 2 cores
    .venv/bin/python benchmarks/load.py --size tiny     # a quick check of the script itself

Writes (once, into a cache folder later runs reuse) a random model with the architecture of
LLaVA-OneVision-0.5B as the Inst-It checkpoints store it: Qwen2-0.5B (hidden 896, 24 layers,
152k-row embedding and a separate ``lm_head``) plus the SigLIP-so400m tower less its last layer,
with a tokenizer of Qwen2's size (151,646 tokens).  The same tensors are written twice: in
LLaVA-NeXT's original layout (``model.layers.*``, ``model.mm_projector.*``,
``model.vision_tower.vision_tower.*``, ``mm_*`` config fields, tower folder) and in transformers'
LLaVA-OneVision layout (the names ``instit convert`` writes: the model's own, no renaming).

Each load runs in a fresh subprocess, all rows round-robin (median of ``--repeats``, after one
unmeasured warm-up per layout so the page cache is equally warm for everyone), and reports the
wall time of the load call alone (imports done before, instit's lazy ones too) and memory growth
over the process before the load: ``load peak`` (``VmHWM`` after resetting it), ``anon peak``
(``RssAnon`` sampled every 5 ms: private memory, without the memory-mapped safetensors pages
that the kernel can drop) and ``after use`` (``VmHWM`` once every weight has been read, as a first
forward pass does: lazily mapped bfloat16 weights are only then resident).  Rows:
``InstIt.from_pretrained`` on both layouts, transformers'
``LlavaOnevisionForConditionalGeneration.from_pretrained`` on its layout, alone and followed by
``AutoTokenizer.from_pretrained`` (instit loads the tokenizer too), and (``instit steps``)
instit's load split into reading the checkpoint, the tokenizer and the weights.  Done for the
stored dtype (bfloat16) and for float32 (what ``dtype="auto"`` picks on a CPU).  Targets: instit
time <= 1.2x transformers', peak RSS growth <= 1.3x the weights (in the loaded dtype).

The architecture presets and :func:`write_checkpoints` are shared with ``ask.py`` and ``gpu.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QWEN_TOKENS = 151646  # len(tokenizer) of the Qwen2 checkpoints: 151643 BPE tokens + 3 specials
TOWER_FOLDER = "siglip-so400m-patch14-384"
SHARD_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Architecture:
    """Sizes of a Qwen2 language model plus a SigLIP-384 tower (layers as stored: one fewer
    than the stock tower, as LLaVA-NeXT drops the last)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    rows: int  # embedding / lm_head rows (more than the tokenizer's tokens, as Qwen2's)
    tower_hidden: int = 1152
    tower_intermediate: int = 4304
    tower_layers: int = 26
    tower_heads: int = 16

    def text_config(self, tokenizer: Any) -> dict[str, Any]:
        """Qwen2 config fields (without ``model_type``)."""
        return {
            "vocab_size": self.rows,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": 32768,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            "eos_token_id": tokenizer.eos_token_id,
        }

    def vision_config(self) -> dict[str, Any]:
        """SigLIP vision config fields (as loaded: ``tower_layers`` layers, no head)."""
        return {
            "hidden_size": self.tower_hidden,
            "intermediate_size": self.tower_intermediate,
            "num_hidden_layers": self.tower_layers,
            "num_attention_heads": self.tower_heads,
            "image_size": 384,
            "patch_size": 14,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
            "vision_use_head": False,
        }


ARCHITECTURES = {
    # LLaVA-OneVision-0.5B's shapes: Qwen2-0.5B + SigLIP-so400m (untied lm_head, as Inst-It)
    "0.5b": Architecture(
        hidden=896, intermediate=4864, layers=24, heads=14, kv_heads=2, rows=151936
    ),
    # Inst-It Qwen2-7B's shapes: Qwen2-7B + SigLIP-so400m
    "7b": Architecture(
        hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, rows=152064
    ),
    # small enough for CPU generation benchmarks, real vocabulary and visual geometry
    "small": Architecture(
        hidden=256,
        intermediate=1024,
        layers=4,
        heads=4,
        kv_heads=2,
        rows=151936,
        tower_hidden=192,
        tower_intermediate=768,
        tower_layers=4,
        tower_heads=4,
    ),
    # large enough that a prompt's prefill dominates its 16 new tokens (prefix-cache benchmark)
    "prefill": Architecture(
        hidden=512,
        intermediate=2048,
        layers=8,
        heads=8,
        kv_heads=2,
        rows=151936,
        tower_hidden=192,
        tower_intermediate=768,
        tower_layers=4,
        tower_heads=4,
    ),
    "tiny": Architecture(
        hidden=64,
        intermediate=128,
        layers=2,
        heads=4,
        kv_heads=2,
        rows=151936,
        tower_hidden=32,
        tower_intermediate=64,
        tower_layers=2,
        tower_heads=4,
    ),
}


# -- writing the checkpoints -----------------------------------------------------------------------


def _tokenizer_files(template: Path, folder: Path, tokens: int) -> Any:
    """Copy ``template``'s tokenizer into ``folder`` with its vocabulary padded to ``tokens``
    (filler entries after the trained ones), so ``len(tokenizer)`` is Qwen2's; return it."""
    from transformers import AutoTokenizer

    data = json.loads((template / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    for index in range(len(vocab), tokens):
        vocab[f"<filler_{index}>"] = index
    (folder / "tokenizer.json").write_text(json.dumps(data))
    shutil.copy(template / "tokenizer_config.json", folder / "tokenizer_config.json")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    assert len(tokenizer) == tokens, (len(tokenizer), tokens)
    return tokenizer


def _original_name(name: str) -> str:
    """transformers' LLaVA-OneVision weight name -> LLaVA-NeXT's."""
    for old, new in (
        ("model.vision_tower.", "model.vision_tower.vision_tower.vision_model."),
        ("model.multi_modal_projector.linear_1.", "model.mm_projector.0."),
        ("model.multi_modal_projector.linear_2.", "model.mm_projector.2."),
        ("model.language_model.", "model."),
    ):
        if name.startswith(old):
            return new + name.removeprefix(old)
    return name


class _ShardWriter:
    """Writes tensors into ``model-0000k-of-0000n.safetensors`` shards of at most
    :data:`SHARD_BYTES` plus the index, renaming them while they are added."""

    def __init__(self, folder: Path, rename: Any) -> None:
        self.folder, self.rename = folder, rename
        self.pending: dict[str, Any] = {}
        self.size = 0
        self.total = 0
        self.shards: list[list[str]] = []

    def add(self, name: str, tensor: Any) -> None:
        nbytes = tensor.numel() * tensor.element_size()
        if self.pending and self.size + nbytes > SHARD_BYTES:
            self.flush()
        self.pending[self.rename(name)] = tensor
        self.size += nbytes

    def flush(self) -> None:
        from safetensors.torch import save_file

        self.shards.append(sorted(self.pending))
        file = self.folder / f"part-{len(self.shards)}.safetensors"
        save_file(self.pending, str(file), metadata={"format": "pt"})
        self.total += self.size
        self.pending, self.size = {}, 0

    def close(self) -> None:
        self.flush()
        weight_map: dict[str, str] = {}
        count = len(self.shards)
        for number, names in enumerate(self.shards, start=1):
            file = f"model-{number:05d}-of-{count:05d}.safetensors"
            (self.folder / f"part-{number}.safetensors").rename(self.folder / file)
            weight_map.update(dict.fromkeys(names, file))
        index = {"metadata": {"total_size": self.total}, "weight_map": weight_map}
        (self.folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def _random_tensor(name: str, shape: tuple[int, ...], generator: Any, device: str) -> Any:
    import torch

    if len(shape) == 1 and "norm" in name and name.endswith("weight"):
        return torch.ones(shape, dtype=torch.bfloat16, device=device)
    if len(shape) == 1 and name.endswith("bias"):
        return torch.zeros(shape, dtype=torch.bfloat16, device=device)
    values = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    return (values * 0.02).to(torch.bfloat16)


def write_checkpoints(
    folder: Path,
    arch: Architecture,
    *,
    layouts: tuple[str, ...] = ("original", "transformers"),
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Path]:
    """Write a random bfloat16 checkpoint of ``arch`` in each of ``layouts`` under ``folder``
    (reused when already complete); return ``{layout: path}``.

    The ``lm_head`` rows of the end and padding tokens are zero: their logit is 0 while the
    largest of 150k random logits is positive, so greedy answers always run to
    ``max_new_tokens`` and generation benchmarks compare equal token counts.  ``device`` is
    where the random numbers are drawn (``"cuda"`` for the 7B model).
    """
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        Qwen2Config,
        SiglipVisionConfig,
    )

    from instit.testing import make_tiny_checkpoint

    paths = {layout: folder / layout for layout in layouts}
    done = folder / "complete.json"
    if done.exists() and set(json.loads(done.read_text())) >= set(layouts):
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    template = make_tiny_checkpoint(folder / "template", arch="qwen2-siglip")
    for path in paths.values():
        path.mkdir(parents=True)
    tokenizer = None
    for path in paths.values():
        tokenizer = _tokenizer_files(template, path, QWEN_TOKENS)
    text = arch.text_config(tokenizer)
    vision = arch.vision_config()
    template_config = json.loads((template / "config.json").read_text())
    pinpoints = template_config["image_grid_pinpoints"]  # square grid: (w, h) == (h, w) lists
    config = LlavaOnevisionConfig(
        text_config=Qwen2Config(**text).to_dict(),
        vision_config=SiglipVisionConfig(**vision).to_dict(),
        image_token_id=QWEN_TOKENS,
        video_token_id=QWEN_TOKENS + 1,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=pinpoints,
    )
    config.architectures = ["LlavaOnevisionForConditionalGeneration"]
    if "transformers" in paths:
        config.save_pretrained(str(paths["transformers"]))
    if "original" in paths:
        original = paths["original"]
        keep = {k: v for k, v in template_config.items() if k.startswith("mm_") or "image" in k}
        original_config = {
            "model_type": "qwen2",
            "architectures": ["LlavaQwenForCausalLM"],
            "torch_dtype": "bfloat16",
            "tokenizer_model_max_length": 32768,
            **text,
            **keep,
            "mm_vision_tower": TOWER_FOLDER,
            "mm_hidden_size": arch.tower_hidden,
        }
        (original / "config.json").write_text(json.dumps(original_config, indent=1))
        tower = original / TOWER_FOLDER
        tower.mkdir()
        stock = {**vision, "num_hidden_layers": arch.tower_layers + 1}
        (tower / "config.json").write_text(
            json.dumps({"model_type": "siglip", "vision_config": stock}, indent=1)
        )
        shutil.copy(
            next(template.glob("siglip-*/preprocessor_config.json")),
            tower / "preprocessor_config.json",
        )

    with torch.device("meta"):
        shapes = {
            n: tuple(t.shape)
            for n, t in LlavaOnevisionForConditionalGeneration(config).state_dict().items()
        }
    renames = {"original": _original_name, "transformers": lambda name: name}
    writers = [_ShardWriter(path, renames[layout]) for layout, path in paths.items()]
    generator = torch.Generator(device=device).manual_seed(seed)
    silent = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    for name, shape in shapes.items():
        tensor = _random_tensor(name, shape, generator, device)
        if name == "lm_head.weight":
            tensor[silent] = 0
        tensor = tensor.cpu()
        for writer in writers:
            writer.add(name, tensor)
    for writer in writers:
        writer.close()
    shutil.rmtree(template)
    done.write_text(json.dumps(list(layouts)))
    return paths


def weight_bytes(folder: Path) -> int:
    """Bytes of all tensors in ``folder``'s safetensors index."""
    return int(
        json.loads((folder / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
    )


# -- measuring (one subprocess per load) -----------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class _AnonPeak:
    """Samples ``RssAnon`` (private memory, not file pages) every few ms in a thread."""

    def __init__(self) -> None:
        import threading

        self.peak = _status_kb("RssAnon")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, _status_kb("RssAnon"))

    def finish(self) -> int:
        self.stop.set()
        self.thread.join()
        return max(self.peak, _status_kb("RssAnon"))


def worker(kind: str, folder: str, dtype_name: str) -> None:
    """Load once (imports done first), then read every weight once (as a first forward pass
    would), and print one JSON line with times and memory (MiB, growth over the start)."""
    import gc

    import torch
    from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration
    from transformers.utils import logging

    import instit.model.modeling
    import instit.model.processing
    import instit.model.quantization
    import instit.prompting.templates  # noqa: F401 - from_pretrained's lazy imports, done first
    from instit.model.checkpoint import read_checkpoint
    from instit.model.core import InstIt
    from instit.model.weights import load_module

    logging.disable_progress_bar()
    dtype = getattr(torch, dtype_name)
    steps: dict[str, float] = {}
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss_before, anon_before = _status_kb("VmRSS"), _status_kb("RssAnon")
    anon = _AnonPeak()
    start = time.perf_counter()
    if kind == "transformers":
        module = LlavaOnevisionForConditionalGeneration.from_pretrained(folder, dtype=dtype)
    elif kind == "transformers+tokenizer":
        module = LlavaOnevisionForConditionalGeneration.from_pretrained(folder, dtype=dtype)
        AutoTokenizer.from_pretrained(folder)
    elif kind == "instit":
        module = InstIt.from_pretrained(
            folder, device="cpu", dtype=dtype_name, quantization=None, progress=False
        ).module
    else:  # instit's from_pretrained, step by step
        spec = read_checkpoint(folder)
        steps["read checkpoint"] = time.perf_counter() - start
        tokenizer = AutoTokenizer.from_pretrained(folder)
        steps["tokenizer"] = time.perf_counter() - start - sum(steps.values())
        module = load_module(spec, len(tokenizer), dtype=dtype, device="cpu", progress=False)
        steps["weights"] = time.perf_counter() - start - sum(steps.values())
    seconds = time.perf_counter() - start
    load_peak = _status_kb("VmHWM") - rss_before
    load_anon_peak = anon.finish() - anon_before
    with torch.inference_mode():
        for tensor in module.state_dict().values():
            tensor.max()  # reads every page, no copy
    result = {
        "seconds": seconds,
        "load_peak": load_peak / 1024,
        "load_anon_peak": load_anon_peak / 1024,
        "use_peak": (_status_kb("VmHWM") - rss_before) / 1024,
        "use_file": _status_kb("RssFile") / 1024,
        "steps": steps,
    }
    print(json.dumps(result))


KINDS = {
    "transformers": ("transformers", "transformers"),
    "transformers + tokenizer": ("transformers+tokenizer", "transformers"),
    "instit (original layout)": ("instit", "original"),
    "instit (tf layout)": ("instit", "transformers"),
    "instit steps (original)": ("steps", "original"),
}


def measure(paths: dict[str, Path], dtype: str, repeats: int) -> dict[str, dict[str, Any]]:
    """Medians over ``repeats`` fresh-process loads per row of :data:`KINDS`, run round-robin
    (so a busy machine slows every row alike) after one unmeasured warm-up per layout."""
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in KINDS}
    for layout in ("transformers", "original"):
        run_worker("transformers" if layout == "transformers" else "instit", paths[layout], dtype)
    for _ in range(repeats):
        for label, (kind, layout) in KINDS.items():
            runs[label].append(run_worker(kind, paths[layout], dtype))
    medians = {}
    for label, results in runs.items():
        medians[label] = {
            key: statistics.median(r[key] for r in results) for key in results[0] if key != "steps"
        }
        medians[label]["steps"] = {
            key: statistics.median(r["steps"][key] for r in results) for key in results[0]["steps"]
        }
    return medians


def run_worker(kind: str, folder: Path, dtype: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", kind, str(folder), dtype]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} load failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(ARCHITECTURES), default="0.5b")
    parser.add_argument("--repeats", type=int, default=3, help="loads per row (median)")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-load-bench",
        help="folder for the generated checkpoints (reused between runs)",
    )
    args = parser.parse_args()
    arch = ARCHITECTURES[args.size]
    started = time.perf_counter()
    paths = write_checkpoints(args.cache / args.size, arch)
    stored = weight_bytes(paths["original"])
    print(
        f"{args.size}: {stored / 2 / 1e9:.3f} B parameters, {stored / 2**20:.0f} MiB in bfloat16 "
        f"(checkpoints ready in {time.perf_counter() - started:.0f} s); median of "
        f"{args.repeats} fresh processes; memory is growth in MiB and / the weights in the "
        "loaded dtype"
    )
    header = (
        f"{'dtype':<8} {'loader':<26} {'seconds':>7} {'vs tf':>6} {'load peak':>10} "
        f"{'anon peak':>10} {'after use':>10}"
    )
    print(header)
    print("-" * len(header))
    summary = []
    for dtype in args.dtypes:
        weights = stored / 2 * (4 if dtype == "float32" else 2) / 2**20
        rows = measure(paths, dtype, args.repeats)
        base = rows["transformers"]["seconds"]

        def cell(mib: float, weights: float = weights) -> str:
            return f"{mib:>5.0f} {mib / weights:>3.2f}x"

        for label, r in rows.items():
            print(
                f"{dtype:<8} {label:<26} {r['seconds']:>7.2f} {r['seconds'] / base:>5.2f}x "
                f"{cell(r['load_peak'])} {cell(r['load_anon_peak'])} {cell(r['use_peak'])}"
            )
        steps = rows["instit steps (original)"]["steps"]
        print(
            f"{dtype:<8} instit steps: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items())
            + f"; weights {weights:.0f} MiB"
        )
        ours = rows["instit (original layout)"]
        summary.append(
            f"{dtype}: time {ours['seconds'] / base:.2f}x transformers, "
            f"{ours['seconds'] / rows['transformers + tokenizer']['seconds']:.2f}x transformers + "
            f"tokenizer (target <= 1.2x); load peak {ours['load_peak'] / weights:.2f}x weights, "
            f"anonymous {ours['load_anon_peak'] / weights:.2f}x (target <= 1.3x)"
        )
        print()
    print("instit (original layout) vs targets:\n  " + "\n  ".join(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
