"""The :class:`InstIt` model: load a checkpoint, build prompts, encode media, generate.

::

    from instit import InstIt

    model = InstIt.from_pretrained("Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B")  # 4-bit on CUDA
    [answer] = model.generate([image], ["What is [1] holding?"])
    for chunk in model.stream(image, "Describe [2]."):
        print(chunk, end="")

    encoded = model.encode_media(image)         # visual features computed once ...
    answers = model.generate([encoded] * 3, ["What is [1]?", "And [2]?", "Where is [3]?"])
    # ... and template head + media prefilled once for all three (the prefix cache)

    encoded = model.encode_media(image, cache_prefix=True)   # a loop of your own shares it too
    for question in questions:
        [answer] = model.generate([encoded], [question])

Everything runs on transformers: :attr:`InstIt.module` is a
``LlavaOnevisionForConditionalGeneration`` (subclass, see :mod:`instit.model.modeling`) and
:attr:`InstIt.tokenizer` the checkpoint's tokenizer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from instit.errors import CheckpointError, InstitTypeError, InstitValueError, ModelInputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from instit.media import LoadedMedia
    from instit.model.checkpoint import CheckpointSpec
    from instit.model.memory import MemoryCheck
    from instit.model.prefix_cache import PrefixCache
    from instit.model.processing import VisionSpec
    from instit.results import Answer, AnswerStream, ImageDescription, VideoDescription

__all__ = ["EncodedMedia", "InstIt", "convert"]

MediaLike = Any
"""What the public methods take: anything :func:`instit.media.load_media` loads (PIL image,
array, image or video file, frame folder, ``Video``, list of frames) or an :class:`EncodedMedia`.
They load it once, at their top; the private methods below take only ``LoadedMedia`` (or
``EncodedMedia``)."""

_REQUIRED_TOKENS = {"qwen_1_5": ("<|im_start|>", "<|im_end|>"), "vicuna_v1": ("</s>",)}


@dataclass(frozen=True, eq=False)
class EncodedMedia:
    """Visual features of one image or video, ready to be spliced into any number of prompts.

    Attributes:
        modality: ``"image"`` or ``"video"``.
        features: ``[num_tokens, hidden]`` on the model's device, in the model's dtype.
        image_size: the image's ``(width, height)``; ``None`` for a video.
        num_frames: frames of a video (1 for an image).
        prefix: the KV cache of the template head and these features
            (``encode_media(media, cache_prefix=True)``): every prompt about this media then
            prefills only its question.  ``None`` without it.  Dropping the object frees it.
    """

    modality: Literal["image", "video"]
    features: torch.Tensor = field(repr=False)
    image_size: tuple[int, int] | None
    num_frames: int
    prefix: PrefixCache | None = field(default=None, repr=False)

    @property
    def num_tokens(self) -> int:
        """Visual tokens this media occupies in the sequence."""
        return int(self.features.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the tensors)."""
        return {
            "modality": self.modality,
            "num_tokens": self.num_tokens,
            "image_size": list(self.image_size) if self.image_size else None,
            "num_frames": self.num_frames,
            "hidden_size": int(self.features.shape[1]),
            "prefix": self.prefix.to_dict() if self.prefix is not None else None,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict())


def _vision_spec(spec: CheckpointSpec) -> VisionSpec:
    from instit.model import processing as proc

    vision = spec.vision_config
    # the original layout uses LLaVA-NeXT's processors, whatever the tower folder says
    exported = spec.preprocessor if spec.layout == "transformers" and spec.preprocessor else None
    mean, std = proc.tower_mean_std(spec.tower, exported)
    return proc.VisionSpec(
        tower=spec.tower,
        image_size=int(vision["image_size"]),
        patch_size=int(vision["patch_size"]),
        mean=mean,
        std=std,
        image_aspect_ratio=spec.image_aspect_ratio,
        grid_pinpoints=spec.grid_pinpoints,
        patch_merge_type="spatial_unpad",
    )


def _check_tokenizer(tokenizer: Any, template: str, folder: Path) -> None:
    missing = []
    for token in _REQUIRED_TOKENS[template]:
        ids = tokenizer(token, add_special_tokens=False).input_ids
        if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
            missing.append(token)
    if missing:
        raise CheckpointError(
            f"the tokenizer in {folder} lacks the special token(s) {missing} that the "
            f"{template!r} conversation template needs; use the tokenizer files of the checkpoint"
        )


class InstIt:
    """An Inst-It model (a LLaVA-NeXT checkpoint) running on transformers.

    Build it with :meth:`from_pretrained`. ``module`` is the transformers model, ``tokenizer``
    its tokenizer, ``spec`` what was read from the checkpoint, ``vision`` the preprocessing
    settings.
    """

    def __init__(
        self,
        module: Any,
        tokenizer: Any,
        spec: CheckpointSpec,
        *,
        template: str,
        quantization: str | None = None,
    ) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.spec = spec
        self.template = template
        self.quantization = quantization
        self.vision = _vision_spec(spec)
        self.adapter: dict[str, Any] | None = None
        """The LoRA adapter on the model (``{"path": ..., "merged": bool}``), if any."""
        #: the CPU memory check of :meth:`from_pretrained` (``None`` for other devices)
        self.memory: MemoryCheck | None = None

    # -- loading -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        quantization: Any = "auto",
        device: str = "auto",
        dtype: Any = "auto",
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool | None = None,
        attn_implementation: str = "sdpa",
        progress: bool = True,
        adapter: str | os.PathLike[str] | None = None,
        merge: bool = False,
        device_map: str | Mapping[str, Any] | None = None,
        max_memory: Mapping[int | str, int | str] | None = None,
    ) -> InstIt:
        """Load a checkpoint folder or hub id (LLaVA-NeXT's layout or transformers').

        Args:
            name_or_path: a local folder or a hub id such as
                ``"Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B"`` (only configs, safetensors and
                tokenizer files are downloaded).
            quantization: ``"auto"`` (4-bit NF4 on CUDA; on the CPU none, unless the float32
                load would not fit in memory), ``"4bit"``, ``"8bit"`` (CUDA or CPU), ``None`` or
                a ``transformers.BitsAndBytesConfig``.
            device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
            dtype: ``"auto"`` (bfloat16 on recent GPUs, float16 on older ones, float32 on CPU)
                or a dtype / its name.  On the CPU, settings left at ``"auto"`` fall back to
                the most faithful setting that fits in the available memory (see
                :mod:`instit.model.memory`; logged, and in :meth:`info`).
            revision, cache_dir, local_files_only: passed to the hub download.
            attn_implementation: transformers' attention backend (``"sdpa"``, ``"eager"`` ...).
            progress: show the weight-loading progress bar.
            adapter: a LoRA adapter folder written by :func:`instit.finetune`, put on the
                loaded model (see :func:`instit.model.adapters.attach_adapter`).
            merge: fold ``adapter`` into the weights (unquantized models only).
            device_map: spread the model over several GPUs instead of ``device``: a strategy
                (``"auto"``, ``"balanced"``, ``"balanced_low_0"``, ``"sequential"``) or a dict
                ``{module name: device}`` (see :mod:`instit.model.placement`).  Without a
                visible GPU a strategy loads on the CPU.
            max_memory: per-device bounds for ``device_map``, e.g. ``{0: "20GiB", 1: "20GiB",
                "cpu": "60GiB"}``.

        Raises:
            CheckpointError: missing files, shards or weights, unknown architecture, a
                tokenizer without the template's special tokens.
            DependencyError: 4/8-bit quantization without bitsandbytes or on a device other
                than CUDA and the CPU; a device or device_map naming a GPU that is not visible.
            InstitValueError: both ``device`` and ``device_map``, an unknown strategy, a map
                with unknown module names, weights left without a device, or ``"disk"``.
            NotEnoughMemoryError: a CPU load would not fit in the available memory (raised
                before any weight is read; names the setting that fits).
        """
        import torch
        from transformers import AutoTokenizer

        from instit.model import quantization as q
        from instit.model.adapters import attach_adapter, check_adapter_folder
        from instit.model.checkpoint import read_checkpoint, snapshot
        from instit.model.placement import check_map_names, resolve_placement
        from instit.model.weights import checked_config, load_module, parameter_names
        from instit.prompting.templates import template_for

        if adapter is not None:
            check_adapter_folder(adapter)  # before reading any weight
        elif merge:
            raise InstitValueError("merge=True needs an adapter; pass adapter=FOLDER as well")

        place = resolve_placement(device, device_map, max_memory)
        folder = snapshot(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
        )
        spec = read_checkpoint(folder, cache_dir=cache_dir, local_files_only=local_files_only)
        checked_config(spec, spec.embedding_rows)  # before the tokenizer reads config.json too
        if isinstance(device_map, Mapping):
            check_map_names(device_map, parameter_names(spec))
        resolved_device = place.device
        dtype_name = q.resolve_dtype(dtype, resolved_device)
        mode = q.resolve_quantization(quantization, resolved_device)
        memory = None
        if resolved_device == "cpu":
            dtype_name, mode, memory = _fit_cpu_load(spec, dtype, quantization, dtype_name, mode)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"could not load the tokenizer of {folder} ({exc}); the checkpoint needs its "
                "tokenizer files (tokenizer.json or tokenizer.model + tokenizer_config.json)"
            ) from exc
        template = template_for(spec.text_config)
        _check_tokenizer(tokenizer, template, folder)
        module = load_module(
            spec,
            len(tokenizer),
            dtype=getattr(torch, dtype_name),
            device=resolved_device,
            quantization_config=q.bitsandbytes_config(
                mode, dtype_name, cpu_offload=place.device_map is not None
            ),
            attn_implementation=attn_implementation,
            progress=progress,
            device_map=place.device_map,
            max_memory=place.max_memory,
        )
        label = mode if isinstance(mode, str) or mode is None else "custom"
        model = cls(module, tokenizer, spec, template=template, quantization=label)
        model.memory = memory
        if adapter is not None:
            attach_adapter(model, adapter, merge=merge)
        return model

    # -- information -------------------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The transformers model config (``LlavaOnevisionConfig``)."""
        return self.module.config

    @property
    def device(self) -> torch.device:
        """Where the model's inputs go."""
        return self.module.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the (unquantized) embeddings and visual features."""
        return self.module.get_input_embeddings().weight.dtype

    @property
    def context_length(self) -> int:
        """Longest sequence (prompt + visual tokens) the checkpoint accepts."""
        return self.spec.context_length

    def __repr__(self) -> str:
        return (
            f"InstIt({self.spec.path.name!r}, layout={self.spec.layout!r}, "
            f"template={self.template!r}, tower={self.spec.tower!r}, device={self.device}, "
            f"dtype={self.dtype}, quantization={self.quantization!r})"
        )

    def info(self) -> dict[str, Any]:
        """JSON-ready description of the loaded model."""
        return {
            "checkpoint": self.spec.to_dict(),
            "template": self.template,
            "vision": self.vision.to_dict(),
            "device": str(self.device),
            "device_map": getattr(self.module, "hf_device_map", None),
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantization": self.quantization,
            "adapter": self.adapter,
            "vocab_size": len(self.tokenizer),
            "memory": None if self.memory is None else self.memory.to_dict(),
        }

    # -- prompts and inputs ------------------------------------------------------------------------

    def prompt(self, question: str, media: bool = True) -> str:
        """The full templated prompt for a user ``question`` (with the media placeholder)."""
        from instit.prompting.templates import build_prompt

        return build_prompt(question, self.template, media=bool(media))

    def _token_ids(self, question: str, media: bool) -> list[int]:
        from instit.prompting.templates import tokenize_prompt

        return tokenize_prompt(self.prompt(question, media), self.tokenizer)

    def _load(self, media: MediaLike) -> LoadedMedia | EncodedMedia:
        """The edge of the public methods: an :class:`EncodedMedia` as it is, anything else
        through :func:`instit.media.load_media` (the one place media is read)."""
        from instit.media import load_media

        return media if isinstance(media, EncodedMedia) else load_media(media)

    @staticmethod
    def _content(media: LoadedMedia) -> tuple[str, Image.Image | list[Image.Image]]:
        """``("image", PIL image)`` or ``("video", [PIL frames])`` of loaded media; anything
        else (a path, an array, ...) is an :class:`~instit.errors.InstitTypeError`."""
        from PIL import Image

        from instit.media import check_loaded
        from instit.video import Video

        loaded = check_loaded(media, "InstIt's private methods")
        if isinstance(loaded, Image.Image):
            return "image", loaded
        return "video", list(loaded.frames) if isinstance(loaded, Video) else loaded

    def _visual_tokens(self, modality: str, content: Any) -> int:
        from instit.model.processing import image_token_count, video_token_count

        if modality == "image":
            return image_token_count(content.size, self.vision)
        return video_token_count(len(content), self.vision)

    def _check_length(self, total: int, what: str) -> None:
        if total > self.context_length:
            raise ModelInputError(
                f"{what} needs {total} tokens but the checkpoint's context is "
                f"{self.context_length}; use fewer video frames, a smaller image or a shorter "
                "prompt (the reference would silently cut the sequence)"
            )

    def prepare(self, media: MediaLike, question: str) -> dict[str, torch.Tensor]:
        """Inputs for ``module(**inputs)``: the reference's ids with the visual placeholders
        expanded, attention mask and pixel values (``image_sizes`` as (height, width)).

        ``media`` is anything :func:`instit.media.load_media` loads (loaded once, here).
        """
        from instit.media import load_media

        return self._prepare_ids(load_media(media), self._token_ids(question, True))

    def prepare_ids(self, media: MediaLike, ids: Sequence[int]) -> dict[str, torch.Tensor]:
        """:meth:`prepare` for token ids the caller built (one ``-200`` media placeholder), e.g.
        a whole multi-turn conversation for training: the placeholder is expanded to the media's
        visual tokens and the pixel values are made exactly as for a question.
        """
        from instit.media import load_media
        from instit.prompting.templates import IMAGE_TOKEN_INDEX

        ids = list(ids)
        if ids.count(IMAGE_TOKEN_INDEX) != 1:
            raise ModelInputError(
                f"the ids hold {ids.count(IMAGE_TOKEN_INDEX)} media placeholders "
                f"({IMAGE_TOKEN_INDEX}); build them with one media placeholder"
            )
        return self._prepare_ids(load_media(media), ids)

    def _prepare_ids(self, media: LoadedMedia, ids: list[int]) -> dict[str, torch.Tensor]:
        import torch

        from instit.model.processing import process_frames, process_image
        from instit.prompting.templates import IMAGE_TOKEN_INDEX

        modality, content = self._content(media)
        count = self._visual_tokens(modality, content)
        self._check_length(len(ids) - 1 + count, "the prompt with its media")
        placeholder = (
            self.config.image_token_id if modality == "image" else self.config.video_token_id
        )
        at = ids.index(IMAGE_TOKEN_INDEX)
        expanded = ids[:at] + [placeholder] * count + ids[at + 1 :]
        inputs: dict[str, torch.Tensor] = {
            "input_ids": torch.tensor([expanded], device=self.device),
            "attention_mask": torch.ones(1, len(expanded), dtype=torch.long, device=self.device),
        }
        if modality == "image":
            pixels, (width, height) = process_image(content, self.vision)
            inputs["pixel_values"] = pixels[None].to(self.device, self.dtype)
            inputs["image_sizes"] = torch.tensor([[height, width]], device=self.device)
        else:
            pixels = process_frames(content, self.vision)
            inputs["pixel_values_videos"] = pixels[None].to(self.device, self.dtype)
        return inputs

    def encode_media(self, media: MediaLike, *, cache_prefix: bool = False) -> EncodedMedia:
        """Run the vision tower and projector once; reuse the result in :meth:`generate`.

        With ``cache_prefix=True`` the result also carries the KV cache of the template head
        and the media (:attr:`EncodedMedia.prefix`), so that each later prompt about it
        prefills only its question (:meth:`generate`, :meth:`stream`, ``ask``).  ``media`` is
        anything :func:`instit.media.load_media` loads (loaded once, here); an
        :class:`EncodedMedia` is returned as it is, or with its prefix cache added.
        """
        return self._encoded(self._load(media), cache_prefix=cache_prefix)

    def _encoded(
        self, media: LoadedMedia | EncodedMedia, *, cache_prefix: bool = False
    ) -> EncodedMedia:
        """:meth:`encode_media` of loaded media."""
        encoded = media if isinstance(media, EncodedMedia) else self._encode(media)
        if cache_prefix and encoded.prefix is None:
            from instit.model.prefix_cache import build_prefix

            encoded = dataclasses.replace(encoded, prefix=build_prefix(self, encoded))
        return encoded

    def _encode(self, media: LoadedMedia) -> EncodedMedia:
        import torch

        from instit.model.processing import process_frames, process_image

        modality, content = self._content(media)
        self._check_length(self._visual_tokens(modality, content), "the media alone")
        inner = self.module.model
        with torch.inference_mode():
            if modality == "image":
                pixels, (width, height) = process_image(content, self.vision)
                sizes = torch.tensor([[height, width]], device=self.device)
                out = inner.get_image_features(pixels.to(self.device, self.dtype), sizes)
                features = out.pooler_output[0]
                return EncodedMedia("image", features, (width, height), 1)
            pixels = process_frames(content, self.vision)
            out = inner.get_video_features(pixels[None].to(self.device, self.dtype))
            return EncodedMedia("video", out.pooler_output[0], None, len(content))

    def _embeddings(self, ids: list[int], encoded: EncodedMedia | None) -> torch.Tensor:
        """``[L, hidden]`` input embeddings with the visual features spliced in."""
        import torch

        from instit.prompting.templates import IMAGE_TOKEN_INDEX

        embed = self.module.get_input_embeddings()
        if encoded is None:
            return embed(torch.tensor(ids, device=self.device))
        at = ids.index(IMAGE_TOKEN_INDEX)
        text = embed(torch.tensor(ids[:at] + ids[at + 1 :], device=self.device))
        visual = encoded.features.to(text.device, text.dtype)
        return torch.cat((text[:at], visual, text[at:]), dim=0)

    # -- generation --------------------------------------------------------------------------------

    def _generation_config(
        self,
        max_new_tokens: int,
        temperature: float,
        top_p: float | None,
        generation_config: Any,
        generate_kwargs: Mapping[str, Any] | None,
    ) -> Any:
        from instit.model.generation import generation_config as merged

        eos = {self.tokenizer.eos_token_id}
        eos.update(_as_list(getattr(self.module.generation_config, "eos_token_id", None)))
        vocab = self.module.get_output_embeddings().weight.shape[0]
        placeholders = [self.config.image_token_id, self.config.video_token_id]
        return merged(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            generation_config=generation_config,
            generate_kwargs=generate_kwargs,
            eos_token_ids=[t for t in eos if t is not None],
            pad_token_id=self._pad_id(),
            suppress_tokens=[t for t in placeholders if t < vocab],
        )

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def _batch_inputs(
        self,
        media: Sequence[LoadedMedia | EncodedMedia | None],
        prompts: Sequence[str],
        max_new_tokens: int,
    ) -> dict[str, torch.Tensor]:
        """Left-padded ``inputs_embeds`` and attention mask for one batch."""
        import torch

        encoded_by_id: dict[int, EncodedMedia | None] = {}
        rows = []
        for item, question in zip(media, prompts, strict=True):
            if id(item) not in encoded_by_id:
                encoded_by_id[id(item)] = None if item is None else self._encoded(item)
            encoded = encoded_by_id[id(item)]
            ids = self._token_ids(question, encoded is not None)
            length = len(ids) + (encoded.num_tokens - 1 if encoded is not None else 0)
            self._check_length(length + max_new_tokens, "the prompt, its media and max_new_tokens")
            rows.append(self._embeddings(ids, encoded))
        longest = max(r.shape[0] for r in rows)
        embed = self.module.get_input_embeddings()
        pad = embed(torch.tensor([self._pad_id()], device=self.device))[0]
        batch = torch.stack(
            [torch.cat((pad.expand(longest - r.shape[0], -1), r)) for r in rows], dim=0
        )
        mask = torch.zeros(len(rows), longest, dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            mask[i, longest - r.shape[0] :] = 1
        return {"inputs_embeds": batch, "attention_mask": mask}

    def generate(
        self,
        media: Sequence[MediaLike | None],
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        batch_size: int = 8,
        progress: bool = False,
        generation_config: Any = None,
        generate_kwargs: Mapping[str, Any] | None = None,
        prefix_cache: bool = True,
    ) -> list[str]:
        """Answer ``prompts[i]`` about ``media[i]``, in batches (left padding).

        ``prompts`` are user questions; the conversation template is applied here. A media item
        is an image, a video (``Video``, list of frames, ``TxHxWxC`` array, video file, frame
        folder), an :class:`EncodedMedia` or ``None`` (text only), each loaded once here by
        :func:`instit.media.load_media`; arrays are RGB (for BGR arrays use
        ``ask(..., channels="bgr")`` or ``load_media(array, channels="bgr")`` first). The same
        object given several times is encoded once and, with ``prefix_cache`` (default), its
        template head and visual tokens are prefilled once: the prompts about it run as batches
        of their questions on that cached prefix (the same greedy tokens as one by one), and
        the cache is freed before the next media's is made.  An :class:`EncodedMedia` that
        carries a prefix cache (``encode_media(media, cache_prefix=True)``) uses it even for one
        prompt.
        ``progress=True`` shows a bar per batch that counts its tokens as they come.

        ``temperature=0`` is greedy decoding (the reference's setting).  ``generation_config``
        (a ``transformers.GenerationConfig``) and ``generate_kwargs`` (its fields, e.g.
        ``{"num_beams": 3, "repetition_penalty": 1.2}``) pass further settings to
        transformers' ``generate``; see :mod:`instit.model.generation` for what wins.
        """
        if isinstance(prompts, str) or len(media) != len(prompts):
            raise InstitValueError(
                "generate needs one media item per prompt (two lists of equal length); for one "
                "question use generate([media], [question])"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InstitValueError(f"batch_size={batch_size!r}; pass a positive int")
        _check_prompts(prompts)
        config = self._generation_config(
            max_new_tokens, temperature, top_p, generation_config, generate_kwargs
        )
        uses = Counter(id(item) for item in media)
        plain: list[int] = []
        shared: dict[int, list[int]] = {}
        for i, item in enumerate(media):
            carries = isinstance(item, EncodedMedia) and item.prefix is not None
            if item is not None and prefix_cache and (uses[id(item)] > 1 or carries):
                shared.setdefault(id(item), []).append(i)
            else:
                plain.append(i)
        chunks = [plain[s : s + batch_size] for s in range(0, len(plain), batch_size)]
        groups = [
            [indices[s : s + batch_size] for s in range(0, len(indices), batch_size)]
            for indices in shared.values()
        ]
        answers = [""] * len(prompts)
        total = len(chunks) + sum(len(g) for g in groups)
        names = (
            ["generating"] if total == 1 else [f"batch {b}/{total}" for b in range(1, total + 1)]
        )
        bars = iter(names) if progress else None
        # the edge, batch by batch: a batch's media are loaded for it and let go once encoded
        for chunk in chunks:
            inputs = self._batch_inputs(
                self._load_each([media[i] for i in chunk]),
                [prompts[i] for i in chunk],
                config.max_new_tokens,
            )
            self._answer(inputs, config, chunk, answers, bars)
        for group in groups:
            self._answer_group(
                self._load(media[group[0][0]]), prompts, group, config, answers, bars
            )
        return answers

    def _load_each(
        self, media: Sequence[MediaLike | None]
    ) -> list[LoadedMedia | EncodedMedia | None]:
        """:meth:`_load` of every item of one batch (``None``: text only), each object once: an
        object given several times stays one object, so that its prompts share its encoding."""
        loaded: dict[int, LoadedMedia | EncodedMedia | None] = {}
        for item in media:
            if id(item) not in loaded:
                loaded[id(item)] = None if item is None else self._load(item)
        return [loaded[id(item)] for item in media]

    def _answer_group(
        self,
        media: LoadedMedia | EncodedMedia,
        prompts: Sequence[str],
        chunks: list[list[int]],
        config: Any,
        answers: list[str],
        bars: Iterator[str] | None,
    ) -> None:
        """Answer the prompts of one media item on its prefix cache (freed on return)."""
        from instit.model.prefix_cache import suffix_inputs

        prefix = self._encoded(media, cache_prefix=True).prefix
        assert prefix is not None
        for chunk in chunks:
            inputs = suffix_inputs(
                self,
                prefix,
                [prompts[i] for i in chunk],
                max_new_tokens=config.max_new_tokens,
                rows=len(chunk) * (config.num_beams or 1),
            )
            self._answer(inputs, config, chunk, answers, bars)

    def _answer(
        self,
        inputs: dict[str, Any],
        config: Any,
        indices: list[int],
        answers: list[str],
        bars: Iterator[str] | None,
    ) -> None:
        """Generate one batch into ``answers[indices]``; ``bars`` names its token bar (if any)."""
        import torch

        what = next(bars) if bars is not None else ""
        progress = _token_progress(bars is not None, what, config)
        with torch.inference_mode(), progress as streamer:
            out = self.module.generate(**inputs, generation_config=config, **streamer)
        texts = self.tokenizer.batch_decode(out, skip_special_tokens=True)
        for i, text in zip(indices, texts, strict=True):
            answers[i] = text.strip()

    def stream(
        self,
        media: MediaLike | None,
        prompt: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float | None = None,
        generation_config: Any = None,
        generate_kwargs: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Yield the answer to one question as text chunks while it is generated.

        ``media`` is loaded as by :meth:`generate`.  The chunks join to exactly what
        :meth:`generate` returns (leading and trailing whitespace dropped).  An
        :class:`EncodedMedia` with a prefix cache prefills only the question.  Beam search
        cannot stream (``num_beams`` must be 1).
        """
        import torch
        from transformers import TextIteratorStreamer

        from instit.model.prefix_cache import suffix_inputs

        _check_prompts([prompt])
        config = self._generation_config(
            max_new_tokens, temperature, top_p, generation_config, generate_kwargs
        )
        if (config.num_beams or 1) != 1:
            raise InstitValueError(
                f"num_beams={config.num_beams}: transformers streams one sequence only; use "
                "generate() for beam search"
            )
        loaded = None if media is None else self._load(media)
        if isinstance(loaded, EncodedMedia) and loaded.prefix is not None:
            inputs = suffix_inputs(
                self, loaded.prefix, [prompt], max_new_tokens=config.max_new_tokens, rows=1
            )
        else:
            inputs = self._batch_inputs([loaded], [prompt], config.max_new_tokens)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.module.generate(**inputs, generation_config=config, streamer=streamer)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        started, held = False, ""
        for chunk in streamer:
            if not started:
                chunk = chunk.lstrip()
                started = bool(chunk)
            text = held + chunk
            body = text.rstrip()
            held = text[len(body) :]
            if body:
                yield body
        worker.join()
        if failure:
            raise failure[0]

    # -- tasks -------------------------------------------------------------------------------------

    @overload
    def ask(
        self, media: MediaLike, question: str, *, stream: Literal[True], **kwargs: Any
    ) -> AnswerStream: ...
    @overload
    def ask(
        self, media: MediaLike, question: str, *, stream: Literal[False] = ..., **kwargs: Any
    ) -> Answer: ...
    @overload
    def ask(self, media: MediaLike, question: Sequence[str], **kwargs: Any) -> list[Answer]: ...

    def ask(
        self, media: MediaLike, question: str | Sequence[str], **kwargs: Any
    ) -> Answer | AnswerStream | list[Answer]:
        """:func:`instit.tasks.ask` with this model (same keyword arguments).

        Returns an :class:`~instit.results.Answer` for one question, a list of them for a list
        of questions, an :class:`~instit.results.AnswerStream` with ``stream=True``.
        """
        from instit.tasks import ask

        return ask(self, media, question, **kwargs)

    def describe_instances(
        self, media: MediaLike, instances: Any = None, **kwargs: Any
    ) -> ImageDescription | VideoDescription:
        """:func:`instit.tasks.describe_instances` with this model (same keyword arguments)."""
        from instit.tasks import describe_instances

        return describe_instances(self, media, instances, **kwargs)

    # -- saving ------------------------------------------------------------------------------------

    def save_pretrained(
        self, directory: str | os.PathLike[str], *, overwrite: bool = False
    ) -> Path:
        """Write a plain-transformers LLaVA-OneVision checkpoint (see :func:`convert`).

        The folder is written beside ``directory`` and swapped in when complete: an existing
        checkpoint there (``overwrite=True``) is kept until the new one is whole.
        """
        from instit._files import output_lock, replace_folder
        from instit.model.weights import export_transformers

        directory = Path(directory)
        _check_destination(directory, self.spec.path, overwrite=overwrite)
        with output_lock(directory, "the checkpoint"):  # an older one is replaced whole
            replace_folder(directory, lambda staging: export_transformers(self, staging))
        return directory


@contextlib.contextmanager
def _token_progress(enabled: bool, what: str, config: Any) -> Iterator[dict[str, Any]]:
    """``{"streamer": ...}`` for ``module.generate`` with ``config`` (a ``GenerationConfig``)
    that ticks a tqdm bar once per generated token (one decoding step of the batch), or ``{}``
    when disabled or for beam search, which transformers cannot stream."""
    if not enabled or (getattr(config, "num_beams", None) or 1) > 1:
        yield {}
        return
    from tqdm.auto import tqdm
    from transformers.generation.streamers import BaseStreamer

    limit = getattr(config, "max_new_tokens", None)
    with tqdm(total=limit, desc=what, unit="token") as bar:

        class _Ticker(BaseStreamer):
            def put(self, value: Any) -> None:
                if value.dim() == 1:  # one new token per row; the prompt comes as 2-D
                    bar.update(1)

            def end(self) -> None:  # stopped at end of text: the bar ends full, at the count
                bar.total = bar.n
                bar.refresh()

        yield {"streamer": _Ticker()}


def _fit_cpu_load(
    spec: CheckpointSpec, dtype: Any, quantization: Any, dtype_name: str, mode: Any
) -> tuple[str, Any, MemoryCheck]:
    """The CPU memory check: the dtype and quantization to load with, and the check itself."""
    from instit.model.memory import check_cpu_load
    from instit.model.quantization import has_bitsandbytes

    custom = mode is not None and not isinstance(mode, str)
    label = ("4bit" if mode.load_in_4bit else "8bit") if custom else mode
    check = check_cpu_load(
        spec,
        dtype_name,
        label,
        dtype_fixed=dtype != "auto",
        quantization_fixed=quantization != "auto",
        bitsandbytes_available=has_bitsandbytes(),
    )
    return check.dtype, mode if custom else check.quantization, check


def _check_prompts(prompts: Sequence[Any]) -> None:
    for question in prompts:
        if not isinstance(question, str):
            raise InstitTypeError(f"prompts must be strings, got {type(question).__name__}")


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: bool = True,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    adapter: str | os.PathLike[str] | None = None,
) -> Path:
    """Convert a LLaVA-NeXT checkpoint into transformers' LLaVA-OneVision layout.

    The result loads with plain ``transformers`` (``AutoModelForImageTextToText`` /
    ``LlavaOnevisionForConditionalGeneration.from_pretrained(dst)``) and gives the same logits
    for images; weights keep the checkpoint's stored dtype. Refuses a non-empty ``dst`` unless
    ``overwrite=True``, and a ``dst`` that is, contains or lies inside the source: the source is
    only read. ``revision``, ``cache_dir`` and ``local_files_only`` are for a hub id. Returns
    ``dst``. With ``adapter`` (a LoRA folder from :func:`instit.finetune`), the adapter is merged
    into the written weights.
    """
    from instit.model.checkpoint import snapshot, stored_dtype

    dst = Path(dst)
    folder = snapshot(
        src, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only
    )
    _check_destination(dst, folder, overwrite=overwrite)
    model = InstIt.from_pretrained(
        folder,
        quantization=None,
        device="cpu",
        dtype=stored_dtype(folder),
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        progress=progress,
        adapter=adapter,
        merge=adapter is not None,
    )
    return model.save_pretrained(dst, overwrite=overwrite)


def _check_destination(dst: Path, source: Path, *, overwrite: bool) -> None:
    """Refuse a destination that is a file, overlaps ``source`` or is non-empty (no overwrite)."""
    if dst.exists() and not dst.is_dir():
        raise InstitValueError(f"{dst} is a file; pass a folder to write the checkpoint to")
    out, src = dst.resolve(), source.resolve()
    if out == src or out in src.parents or src in out.parents:
        raise InstitValueError(
            f"{dst} overlaps the source checkpoint {source}; write to a separate folder "
            "(the source is never modified)"
        )
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise InstitValueError(
            f"{dst} is not empty; pass an empty folder or overwrite=True to replace it"
        )
