"""``instit.finetune``: LoRA / QLoRA / full fine-tuning of an Inst-It checkpoint on your instances.

Built on transformers' ``Trainer`` (optimiser, schedule, gradient accumulation, checkpoints,
several processes under ``accelerate launch``) and PEFT (LoRA).  Every training example is made by
the inference code path: marks drawn by :func:`instit.draw_marks`, videos sampled by
:func:`instit.load_video`, ids and pixels by :meth:`InstIt.prepare_ids` (see
:mod:`instit.training.features` for the label mask).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from instit.errors import InstitTypeError, InstitValueError, ModelInputError
from instit.model.adapters import MANIFEST, import_peft, read_manifest
from instit.training.data import Conversation, fingerprint, read_conversations
from instit.training.features import IGNORE_INDEX, conversation_ids, training_features

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from instit.model.core import InstIt

Method = Literal["lora", "qlora", "full"]
TARGETS = ("language", "projector", "vision")
_METHODS = ("lora", "qlora", "full")
VISION_LAYERS = 12
"""How many of the vision tower's last layers ``target="vision"`` trains (Inst-It trained 12)."""

_LANGUAGE = r"model\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
_PROJECTOR = r"model\.multi_modal_projector\.linear_[12]"


def _targets(target: str | Sequence[str]) -> tuple[str, ...]:
    chosen = (target,) if isinstance(target, str) else tuple(target)
    unknown = [t for t in chosen if t not in TARGETS]
    if not chosen or unknown:
        raise InstitValueError(f"target={target!r}: choose one or more of {', '.join(TARGETS)}")
    return chosen


def _vision_layers(module: Any) -> range:
    """Indices of the vision tower's last :data:`VISION_LAYERS` encoder layers."""
    count = len(module.model.vision_tower.encoder.layers)
    return range(max(0, count - VISION_LAYERS), count)


def _vision_pattern(module: Any) -> str:
    """Linear layers of the vision tower's last :data:`VISION_LAYERS` encoder layers."""
    numbers = "|".join(str(i) for i in _vision_layers(module))
    return (
        rf"model\.vision_tower\.encoder\.layers\.({numbers})\."
        r"(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])"
    )


def _lora_pattern(module: Any, targets: Sequence[str]) -> str:
    parts = {"language": _LANGUAGE, "projector": _PROJECTOR}
    patterns = [parts[t] if t in parts else _vision_pattern(module) for t in targets]
    return "(" + "|".join(patterns) + ")$"


def _full_prefixes(module: Any, targets: Sequence[str]) -> list[str]:
    prefixes = []
    for t in targets:
        if t == "language":
            prefixes.append("model.language_model.")
        elif t == "projector":
            prefixes.append("model.multi_modal_projector.")
        else:
            tower = "model.vision_tower.encoder.layers"
            prefixes += [f"{tower}.{i}." for i in _vision_layers(module)]
    return prefixes


class _Examples:
    """A map-style dataset: conversation ``i`` -> its training features, made on demand (media
    loaded, marked and preprocessed per step, so memory holds no decoded dataset)."""

    def __init__(self, model: InstIt, conversations: list[Conversation], max_frames: int):
        self.model = model
        self.conversations = conversations
        self.max_frames = max_frames

    def __len__(self) -> int:
        return len(self.conversations)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        media, turns = _materialise(self.model, self.conversations[index], self.max_frames)
        return training_features(self.model, media, turns)


def _collate(pad_id: int) -> Any:
    def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        import torch

        kinds = {"pixel_values" in r for r in rows}
        if len(kinds) > 1:
            raise ModelInputError(
                "a batch mixes images and videos; use batch_size=1 with gradient_accumulation "
                "for mixed data"
            )
        longest = max(r["input_ids"].shape[0] for r in rows)

        def pad(name: str, value: int) -> torch.Tensor:
            return torch.stack(
                [
                    torch.nn.functional.pad(r[name], (0, longest - r[name].shape[0]), value=value)
                    for r in rows
                ]
            )

        batch = {
            "input_ids": pad("input_ids", pad_id),
            "attention_mask": pad("attention_mask", 0),
            "labels": pad("labels", IGNORE_INDEX),
        }
        # images with fewer anyres tiles are zero-padded; image_sizes says how many are real
        name = "pixel_values" if "pixel_values" in rows[0] else "pixel_values_videos"
        views = max(r[name].shape[0] for r in rows)
        if name == "pixel_values_videos" and any(len(r[name]) != views for r in rows):
            raise ModelInputError(
                "videos in one batch have different frame counts; use batch_size=1 with "
                "gradient_accumulation, or sample the same number of frames for every video"
            )
        batch[name] = torch.stack(
            [
                torch.cat((r[name], r[name].new_zeros(views - len(r[name]), *r[name].shape[1:])))
                for r in rows
            ]
        )
        if "image_sizes" in rows[0]:
            batch["image_sizes"] = torch.stack([r["image_sizes"] for r in rows])
        return batch

    return collate


def _materialise(
    model: InstIt, conversation: Conversation, max_frames: int
) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """What the model sees for ``conversation`` (marks drawn, frames sampled), checked."""
    from instit.media import LoadedMedia, is_video, load_media
    from instit.tasks._media import prepare
    from instit.video import load_video

    media = conversation.media
    loaded: LoadedMedia
    try:
        if is_video(media) and isinstance(media, (str, os.PathLike)):
            path = Path(media)
            if path.is_dir():
                loaded = video = load_video(path, num_frames=None)
                if len(video) > max_frames:
                    raise InstitValueError(
                        f"{conversation.source}: the frame folder {path} has "
                        f"{len(video)} frames, more than max_frames={max_frames}; raise "
                        "max_frames (thinning would break the turns' <t> references)"
                    )
            else:
                loaded = load_video(path, num_frames=max_frames)
        else:
            loaded = load_media(media)  # the edge of training: prepare takes loaded media
        marks = "draw" if conversation.instances is not None else "as_is"
        prepared = prepare(loaded, conversation.instances, marks=marks)
    except InstitValueError as exc:
        if str(exc).startswith(conversation.source):
            raise
        raise type(exc)(f"{conversation.source}: {exc}") from exc
    if prepared.kind == "video" and prepared.num_frames > max_frames:
        raise InstitValueError(
            f"{conversation.source}: the video has {prepared.num_frames} frames, more than "
            f"max_frames={max_frames}; pass fewer frames or raise max_frames"
        )
    ids, _ = conversation_ids(model, conversation.turns)
    total = len(ids) - 1 + model._visual_tokens(prepared.kind, prepared.model_input)
    model._check_length(total, f"{conversation.source}: the conversation with its media")
    return prepared.model_input, conversation.turns


def _check_output(output: Path, *, resume: bool, overwrite: bool) -> bool:
    """Refuse an output that cannot be written; whether it holds a run to resume."""
    if output.exists() and not output.is_dir():
        raise InstitValueError(f"output_dir {output} is a file; pass a folder")
    if not output.is_dir() or not any(output.iterdir()) or overwrite:
        return False
    if not resume:
        raise InstitValueError(
            f"output_dir {output} is not empty; pass resume=True (--resume) to continue its run "
            "or overwrite=True (--overwrite) to start again"
        )
    return True


def _check_resumable(output: Path, manifest: dict[str, Any]) -> None:
    previous = read_manifest(output)
    if previous is None:
        raise InstitValueError(
            f"output_dir {output} holds no {MANIFEST}: it is not an instit fine-tuning run, so "
            "it cannot be resumed; choose another folder"
        )
    for key in ("base", "method", "target", "data_fingerprint", "lora_rank", "lora_alpha"):
        if previous.get(key) != manifest.get(key):
            raise InstitValueError(
                f"cannot resume {output}: its run has {key}={previous.get(key)!r}, this one "
                f"{manifest.get(key)!r}; resume with the same settings and data, or choose "
                "another output_dir"
            )


def _load_model(model: Any, method: Method, progress: bool) -> InstIt:
    from instit.model.core import InstIt

    if isinstance(model, InstIt):
        if method == "qlora" and model.quantization != "4bit":
            raise InstitValueError(
                "method='qlora' needs a 4-bit base; pass the checkpoint path (instit loads it in "
                "4-bit) or an InstIt loaded with quantization='4bit'"
            )
        if method != "qlora" and model.quantization not in (None, "none"):
            raise InstitValueError(
                f"method={method!r} needs an unquantized base but the model is "
                f"{model.quantization}; use method='qlora' or load with quantization=None"
            )
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise InstitTypeError(
            f"model must be a checkpoint path, a hub id or an instit.InstIt, got "
            f"{type(model).__name__}"
        )
    quantization = "4bit" if method == "qlora" else None
    return InstIt.from_pretrained(model, quantization=quantization, progress=progress)


def _latest_checkpoint(folder: Path) -> str | None:
    runs = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(runs[-1]) if runs else None


def finetune(
    model: Any,
    data: Any,
    output_dir: str | os.PathLike[str],
    *,
    method: Method = "lora",
    epochs: float = 1,
    learning_rate: float = 2e-4,
    batch_size: int = 1,
    gradient_accumulation: int = 1,
    lora_rank: int = 16,
    lora_alpha: int = 32,
    target: str | Sequence[str] = "language",
    max_frames: int = 8,
    media_root: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **trainer_args: Any,
) -> Path:
    """Fine-tune an Inst-It checkpoint on your own instances and save the result.

    Args:
        model: a checkpoint folder or hub id (LLaVA-NeXT's layout or transformers'), or an
            :class:`~instit.InstIt` (trained in place).
        data: an Inst-It Dataset ``.json``, a LLaVA-style ``.jsonl``, a list of such files, or an
            iterable of ``(media, instances_or_tracks, [(question, answer), ...])`` items (see
            :mod:`instit.training.data`).
        output_dir: where the adapter (or, for ``method="full"``, the model), the manifest and
            the trainer's checkpoints go.
        method: ``"lora"`` (LoRA on an unquantized base), ``"qlora"`` (LoRA on a 4-bit NF4 base;
            tower, projector and lm_head stay unquantized) or ``"full"`` (train the targets'
            weights themselves; saved as a transformers checkpoint).
        epochs, learning_rate, batch_size, gradient_accumulation: the usual; ``batch_size``
            above 1 needs batches of one modality (images or videos).
        lora_rank, lora_alpha: LoRA's ``r`` and ``alpha``.
        target: what trains: ``"language"`` (the LM's linear layers), ``"projector"``,
            ``"vision"`` (the tower's last 12 layers, as Inst-It), or a list of them.
        max_frames: frames sampled from video files; frame folders and frame lists must not
            exceed it.
        media_root: the folder media paths in data files are relative to (default: the file's).
        resume: continue the run in ``output_dir`` from its last checkpoint (same base, settings
            and data, else refused).
        overwrite: replace a non-empty ``output_dir``.
        progress: show the trainer's progress bar and loss.
        **trainer_args: more ``transformers.TrainingArguments`` (``max_steps``, ``save_steps``,
            ``gradient_checkpointing``, ``seed``, ...).

    Returns:
        ``output_dir``: load it with ``InstIt.from_pretrained(base, adapter=output_dir)``.

    Raises:
        InstitValueError / InstitTypeError / DatasetError / ModelInputError / InstancesError:
            bad settings or data (checked on every example before training starts).
        DependencyError: peft is missing.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    if method not in _METHODS:
        raise InstitValueError(f"method={method!r}: choose one of {', '.join(_METHODS)}")
    targets = _targets(target)
    for name, value in (
        ("batch_size", batch_size),
        ("gradient_accumulation", gradient_accumulation),
        ("lora_rank", lora_rank),
        ("lora_alpha", lora_alpha),
        ("max_frames", max_frames),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InstitValueError(f"{name}={value!r}: pass a positive whole number")
    if not epochs > 0 or not learning_rate > 0:
        raise InstitValueError(
            f"epochs={epochs!r}, learning_rate={learning_rate!r}: both must be positive"
        )
    if resume and overwrite:
        raise InstitValueError("pass resume=True or overwrite=True, not both")
    if method != "full":
        import_peft()
    output = Path(output_dir)
    resuming = _check_output(output, resume=resume, overwrite=overwrite)
    conversations = read_conversations(data, media_root=media_root)
    base = model if isinstance(model, (str, os.PathLike)) else None
    manifest: dict[str, Any] = {
        "format": 1,
        "base": str(base) if base is not None else None,
        "method": method,
        "target": list(targets),
        "lora_rank": lora_rank if method != "full" else None,
        "lora_alpha": lora_alpha if method != "full" else None,
        "data_fingerprint": fingerprint(conversations),
        "conversations": len(conversations),
    }
    if resuming:
        _check_resumable(output, manifest)
    instit_model = _load_model(model, method, progress)
    manifest["base"] = manifest["base"] or str(instit_model.spec.path)
    manifest["template"] = instit_model.template
    for conversation in conversations:  # every example checked before training starts
        _materialise(instit_model, conversation, max_frames)
    if overwrite and output.is_dir():
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)

    module = instit_model.module
    if method == "full":
        prefixes = _full_prefixes(module, targets)
        for name, parameter in module.named_parameters():
            parameter.requires_grad_(any(name.startswith(p) for p in prefixes))
        trained = module
    else:
        peft = import_peft()
        if method == "qlora":
            module = peft.prepare_model_for_kbit_training(module, use_gradient_checkpointing=False)
        config = peft.LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=_lora_pattern(module, targets),
            bias="none",
        )
        trained = peft.get_peft_model(module, config)
    trained.train()

    settings: dict[str, Any] = {
        "output_dir": str(output / "checkpoints"),
        "num_train_epochs": epochs,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size,
        "gradient_accumulation_steps": gradient_accumulation,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50,
        "save_total_limit": 2,
        "report_to": [],
        "remove_unused_columns": False,
        "disable_tqdm": not progress,
        "use_cpu": instit_model.device.type == "cpu",
        "dataloader_num_workers": 0,
    }
    settings.update(trainer_args)
    trainer = Trainer(
        model=trained,
        args=TrainingArguments(**settings),
        train_dataset=_Examples(instit_model, conversations, max_frames),
        data_collator=_collate(instit_model._pad_id()),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)  # no per-step log lines either
    checkpoint = _latest_checkpoint(output / "checkpoints") if resume else None
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        unwrapped = trainer.accelerator.unwrap_model(trainer.model)
        if method == "full":
            instit_model.module = unwrapped
            instit_model.module.eval()
            instit_model.save_pretrained(output / "model", overwrite=True)
        else:
            unwrapped.save_pretrained(str(output), safe_serialization=True)
        manifest["steps"] = int(result.global_step)
        manifest["train_loss"] = float(result.training_loss)
        manifest["losses"] = [
            float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry
        ]
        (output / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if method != "full":
        instit_model.module = trained.get_base_model()
        instit_model.adapter = {"path": str(output), "merged": False}
    instit_model.module.eval()
    return output
