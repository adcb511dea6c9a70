"""Offline test fixtures: tiny random Inst-It-shaped checkpoints.

:func:`make_tiny_checkpoint` writes a complete checkpoint (safetensors shards + index, config,
tokenizer, vision-tower folder) with the real visual geometry of the Inst-It checkpoints (SigLIP
384 px / CLIP 336 px, patch 14, the real grid pinpoints) but a 64-wide, 2-layer language model,
so pipelines can be tested end to end on a laptop CPU without downloading 16 GB::

    from instit.testing import make_tiny_checkpoint
    from instit import InstIt

    path = make_tiny_checkpoint(tmp_path / "ckpt", arch="qwen2-siglip")
    model = InstIt.from_pretrained(path)          # random weights: the answers are gibberish

Checkpoints are deterministic for a given ``seed``.
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from pathlib import Path
from typing import Any, Literal

from instit.errors import InstitValueError

__all__ = ["make_tiny_checkpoint", "make_tiny_detector", "make_tiny_segmenter"]

_QWEN_PINPOINTS = [[h * 384, w * 384] for h in range(1, 7) for w in range(1, 7)]
_CLIP_PINPOINTS = [[336, 336], [336, 672], [672, 336], [672, 672]]
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]

# Text the tokenizer is trained on: every printable ASCII character plus the words of the Inst-It
# prompts, so prompts tokenise into a realistic mix of multi-character and single-byte tokens.
_CORPUS = [
    string.printable,
    "Based on the image, select the best answer to the following multiple-choice question. "
    "In both the question and options, specific objects are represented using the format [ID]",
    "Based on the video, answer the question. The frames are referred to as <1>, <2>-<4>.",
    "Respond with only the letter (A, B, C, or D) of the correct option. The best answer is:",
    "Please describe the object [1] and the person [2] in detail. What happens between them?",
    "You are a helpful assistant. A chat between a curious user and an artificial intelligence.",
]


def _tokenizer(specials: list[str], size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=specials,
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer)
    if specials == _LLAMA_SPECIALS:  # Llama-style: BOS on every encoding
        core.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=core,
            bos_token="<s>",
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<unk>",
            model_max_length=4096,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=32768,
    )


def _configs(
    arch: str, vocab: int, tokenizer: Any, hidden: int, layers: int
) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import CLIPVisionConfig, LlamaConfig, Qwen2Config, SiglipVisionConfig

    if arch == "qwen2-siglip":
        text = Qwen2Config(
            vocab_size=(vocab // 64 + 1) * 64,  # more rows than tokens, as the real checkpoint
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tokenizer.eos_token_id,
        )
        vision = SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,  # the checkpoint keeps all but the tower's last layer
            num_attention_heads=4,
            image_size=384,
            patch_size=14,
            vision_use_head=False,
        )
        llava = {
            "image_aspect_ratio": "anyres_max_9",
            "image_grid_pinpoints": _QWEN_PINPOINTS,
            "tokenizer_model_max_length": 32768,
            "architectures": ["LlavaQwenForCausalLM"],
        }
    else:
        text = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=4096,
            rope_theta=10000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
        vision = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=336,
            patch_size=14,
            projection_dim=16,
        )
        llava = {
            "image_aspect_ratio": "anyres",
            "image_grid_pinpoints": _CLIP_PINPOINTS,
            "tokenizer_model_max_length": 4096,
            "architectures": ["LlavaLlamaForCausalLM"],
        }
    return text, vision, llava


def _original_name(name: str) -> str:
    name = re.sub(
        r"^model\.vision_tower\.(vision_model\.)?",
        "model.vision_tower.vision_tower.vision_model.",
        name,
    )
    name = name.replace("model.multi_modal_projector.linear_1.", "model.mm_projector.0.")
    name = name.replace("model.multi_modal_projector.linear_2.", "model.mm_projector.2.")
    return re.sub(r"^model\.language_model\.", "model.", name)


def _write_shards(folder: Path, tensors: dict[str, Any], parts: int = 2) -> None:
    from safetensors.torch import save_file

    names = sorted(tensors)
    chunk = -(-len(names) // parts)
    weight_map: dict[str, str] = {}
    for i in range(parts):
        shard = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        part = {n: tensors[n].contiguous() for n in names[i * chunk : (i + 1) * chunk]}
        save_file(part, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))


def _write_original(folder: Path, arch: str, seed: int, hidden: int, layers: int) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import LlavaOnevisionConfig

    from instit.model.modeling import InstItLlavaForConditionalGeneration

    specials = _QWEN_SPECIALS if arch == "qwen2-siglip" else _LLAMA_SPECIALS
    tokenizer = _tokenizer(specials, 400)
    vocab = len(tokenizer)
    text, vision, llava = _configs(arch, vocab, tokenizer, hidden, layers)
    config = LlavaOnevisionConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_grid_pinpoints=llava["image_grid_pinpoints"],
        image_token_id=vocab,
        video_token_id=vocab + 1,
    )
    torch.manual_seed(seed)
    model = InstItLlavaForConditionalGeneration(config)
    with torch.no_grad():  # wider than the default init, so greedy decoding varies with the input
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, (1.0 if "embed" in name else 2.0) / param.shape[-1] ** 0.5)
        model.model.image_newline.normal_(0.0, 1.0)
    tensors = {
        _original_name(n): t.detach().to(torch.bfloat16) for n, t in model.state_dict().items()
    }
    folder.mkdir(parents=True, exist_ok=True)
    _write_shards(folder, tensors)

    tower_name = (
        "siglip-tiny-patch14-384" if arch == "qwen2-siglip" else "clip-vit-tiny-patch14-336"
    )
    tower_dir = folder / tower_name
    tower_dir.mkdir()
    tower = vision.to_dict()
    if arch == "qwen2-siglip":
        tower["num_hidden_layers"] += 1  # LLaVA-NeXT drops the tower's last layer
        tower_type, mean = "siglip", [0.5, 0.5, 0.5]
        std, size = [0.5, 0.5, 0.5], {"height": 384, "width": 384}
    else:
        tower_type, mean = "clip", [0.48145466, 0.4578275, 0.40821073]
        std, size = [0.26862954, 0.26130258, 0.27577711], {"shortest_edge": 336}
    (tower_dir / "config.json").write_text(
        json.dumps({"model_type": tower_type, "vision_config": tower}, indent=1)
    )
    (tower_dir / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": mean, "image_std": std, "size": size, "resample": 3}, indent=1)
    )
    # The stock tower's weights: deliberately different from the checkpoint's fine-tuned copy.
    stock = {
        n.removeprefix("model.vision_tower."): torch.randn_like(t.float())
        for n, t in model.state_dict().items()
        if n.startswith("model.vision_tower.")
    }
    save_file(stock, str(tower_dir / "model.safetensors"))

    raw = text.to_dict()
    raw.pop("rope_parameters", None)
    raw.pop("dtype", None)
    raw.update(
        {
            "rope_theta": text.rope_parameters["rope_theta"],
            "torch_dtype": "bfloat16",
            "mm_vision_tower": tower_name,
            "mm_hidden_size": vision.hidden_size,
            "mm_projector_type": "mlp2x_gelu",
            "mm_vision_select_layer": -2,
            "mm_vision_select_feature": "patch",
            "mm_patch_merge_type": "spatial_unpad",
            "mm_newline_position": "no_token",
            "mm_spatial_pool_mode": "bilinear",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            **llava,
        }
    )
    (folder / "config.json").write_text(json.dumps(raw, indent=1))
    tokenizer.save_pretrained(str(folder))


def make_tiny_checkpoint(
    path: str | Path,
    arch: Literal["qwen2-siglip", "vicuna-clip"] = "qwen2-siglip",
    *,
    layout: Literal["original", "transformers"] = "original",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Write a tiny random Inst-It-like checkpoint to ``path`` (a new or empty folder).

    ``arch``: ``"qwen2-siglip"`` (ChatML tokenizer, SigLIP-384 tower, ``anyres_max_9`` with 36
    pinpoints, 400 tokens but 448 embedding rows) or ``"vicuna-clip"`` (Llama tokenizer with BOS,
    CLIP-336 tower, ``anyres`` with 4 pinpoints). ``layout``: LLaVA-NeXT's ``"original"`` (as the
    released checkpoints) or ``"transformers"`` (LLaVA-OneVision, via :func:`instit.model.convert`).
    ``hidden_size`` (a multiple of 4; MLP twice as wide) and ``num_layers`` size the language
    model, e.g. for memory and speed measurements. Returns ``path``.
    """
    if arch not in ("qwen2-siglip", "vicuna-clip"):
        raise InstitValueError(f"arch={arch!r} is unknown; use 'qwen2-siglip' or 'vicuna-clip'")
    if layout not in ("original", "transformers"):
        raise InstitValueError(f"layout={layout!r} is unknown; use 'original' or 'transformers'")
    if hidden_size < 4 or hidden_size % 4 or num_layers < 1:
        raise InstitValueError(
            f"hidden_size={hidden_size}, num_layers={num_layers}; pass a positive multiple of 4 "
            "and at least one layer"
        )
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise InstitValueError(f"{path} is not empty; pass a new or empty folder")
    if layout == "original":
        _write_original(path, arch, seed, hidden_size, num_layers)
        return path
    from instit.model.core import convert

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "original"
        _write_original(source, arch, seed, hidden_size, num_layers)
        convert(source, path, overwrite=True, progress=False)
    return path


# -- segmentation and detection models (the instit[segment] extra) ---------------------------------

_SAM_SIZE = 128  # px: the tiny SAM 2 / EdgeTAM see 128x128 images (8x8 image embeddings)
_SAM3_SIZE = 112  # px: the tiny SAM 3 sees 112x112 images (an 8x8 ViT grid, patch 14)


def _tiny_sam3_vision(size: int, fpn_hidden: int) -> dict[str, Any]:
    """SAM 3's vision encoder (a ViT with windowed attention and an FPN neck), tiny: shared by
    the SAM 3 detector and the SAM 3 tracker."""
    grid = size // 14
    return {
        "model_type": "sam3_vision_model",
        "backbone_config": {
            "model_type": "sam3_vit_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "image_size": size,
            "patch_size": 14,
            "window_size": 4,
            "global_attn_indexes": [1],
            "pretrain_image_size": size // 2,  # a smaller position table, tiled to the grid
        },
        "fpn_hidden_size": fpn_hidden,
        "backbone_feature_sizes": [[grid * 4, grid * 4], [grid * 2, grid * 2], [grid, grid]],
    }


def make_tiny_segmenter(
    path: str | Path | None = None,
    *,
    kind: Literal["sam2", "edgetam", "sam3_tracker"] = "sam2",
    seed: int = 0,
) -> Path:
    """A tiny random video segmentation checkpoint (video model + video processor) that
    ``instit.Segmenter.from_pretrained`` and transformers' image and video classes all load,
    like the hub's repos:

    * ``"sam2"``: ``Sam2VideoModel`` + ``Sam2VideoProcessor`` (Hiera backbone; as
      ``facebook/sam2.1-*``), 128x128 inputs;
    * ``"edgetam"``: ``EdgeTamVideoModel`` + ``Sam2VideoProcessor`` (a RepViT backbone from
      timm, built with random weights: no download; needs ``timm``), 128x128 inputs;
    * ``"sam3_tracker"``: ``Sam3TrackerVideoModel`` + ``Sam3TrackerVideoProcessor`` (SAM 3's
      ViT), 112x112 inputs; its object-score head is biased towards "present" so that random
      weights still track objects past the prompted frame.

    All have hidden size 128, one memory-attention layer and 3 memory frames.
    """
    import torch
    import transformers
    from transformers import Sam2VideoVideoProcessor

    folder = Path(tempfile.mkdtemp(prefix=f"tiny-{kind}-")) if path is None else Path(path)
    size = _SAM3_SIZE if kind == "sam3_tracker" else _SAM_SIZE
    patch = 14 if kind == "sam3_tracker" else 16
    hidden = 128  # above memory_encoder_output_channels (64), as in SAM 2
    grid = size // patch
    pyramid = [[size // s, size // s] for s in (4, 8, 16)]
    if kind == "sam2":
        backbone: dict[str, Any] = {
            "model_type": "sam2_hiera_det_model",
            "hidden_size": 16,
            "num_attention_heads": 1,
            "image_size": [size, size],
            "blocks_per_stage": [1, 2, 2, 1],
            "embed_dim_per_stage": [16, 32, 64, 128],
            "num_attention_heads_per_stage": [1, 1, 1, 1],
            "window_size_per_stage": [4, 4, 4, 2],
            "global_attention_blocks": [2],
            "window_positional_embedding_background_size": [2, 2],
        }
        vision: dict[str, Any] = {
            "model_type": "sam2_vision_model",
            "backbone_config": backbone,
            "backbone_channel_list": [128, 64, 32, 16],
            "backbone_feature_sizes": pyramid,
            "fpn_hidden_size": hidden,
        }
        extra: dict[str, Any] = {"memory_attention_feed_forward_hidden_size": 128}
        names = ("Sam2VideoConfig", "Sam2VideoModel", "Sam2ImageProcessor", "Sam2VideoProcessor")
    elif kind == "edgetam":
        channels = [8, 16, 32, 64]
        vision = {
            "model_type": "edgetam_vision_model",
            "backbone_config": {
                "model_type": "timm_wrapper",
                "architecture": "repvit_m1",
                "num_classes": 1,  # features_only: no classifier; timm_wrapper needs a count
                "model_args": {
                    "in_chans": 3,
                    "features_only": True,
                    "out_indices": [0, 1, 2, 3],
                    "embed_dim": channels,
                    "depth": [1, 1, 1, 1],
                },
            },
            "backbone_channel_list": channels[::-1],
            "backbone_feature_sizes": pyramid,
            "fpn_hidden_size": hidden,
        }
        extra = {
            "memory_attention_mlp_hidden_size": 128,
            "memory_attention_rope_k_sizes": [4, 4],  # the 2-D latents: 4x4
            "perceiver_resampler_num_latents": 16,
            "perceiver_resampler_num_latents_2d": 16,
            "perceiver_resampler_num_layers": 1,
            "perceiver_resampler_mlp_intermediate_size": 64,
        }
        names = (
            "EdgeTamVideoConfig",
            "EdgeTamVideoModel",
            "Sam2ImageProcessor",
            "Sam2VideoProcessor",
        )
    elif kind == "sam3_tracker":
        vision = _tiny_sam3_vision(size, hidden)
        extra = {"memory_attention_feed_forward_hidden_size": 128}
        names = (
            "Sam3TrackerVideoConfig",
            "Sam3TrackerVideoModel",
            "Sam3ImageProcessor",
            "Sam3TrackerVideoProcessor",
        )
    else:
        raise InstitValueError(f"kind must be 'sam2', 'edgetam' or 'sam3_tracker', got {kind!r}")
    config_class, model_class, image_processor_class, processor_class = (
        getattr(transformers, name) for name in names
    )
    config = config_class(
        vision_config=vision,
        prompt_encoder_config={"hidden_size": hidden, "image_size": size, "patch_size": patch},
        mask_decoder_config={
            "hidden_size": hidden,
            "mlp_dim": 128,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 64,
        },
        image_size=size,
        num_maskmem=3,
        memory_attention_hidden_size=hidden,
        memory_attention_num_layers=1,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=128,
        **extra,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    if kind == "sam3_tracker":
        # with random weights the SAM 3 tracker's object-score head mostly says "no object"
        # after the prompted frame, so nothing would be tracked: bias it towards "present"
        with torch.no_grad():
            model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(10.0)
    model.save_pretrained(folder)
    image_processor = image_processor_class(
        size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
    )
    video_processor = Sam2VideoVideoProcessor(size={"height": size, "width": size})
    processor_class(
        image_processor=image_processor, video_processor=video_processor
    ).save_pretrained(folder)
    return folder


_DETECTOR_WORDS = ["a", "an", "the", "person", "ball", "cat", "dog", "astronaut", "flag", "rocket"]


def _clip_tokenizer() -> tuple[Any, dict[str, int]]:
    """A CLIP tokenizer (and its vocabulary) that spells any lower-case word letter by letter:
    no merges, so it needs no download."""
    from transformers import CLIPTokenizer

    symbols = [*string.ascii_lowercase, "."]
    vocab = {s: i for i, s in enumerate(symbols + [f"{s}</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[]), vocab


def make_tiny_detector(
    path: str | Path | None = None,
    kind: Literal["grounding-dino", "owlv2", "sam3"] = "grounding-dino",
    *,
    seed: int = 0,
) -> Path:
    """A tiny random Grounding DINO (Swin + BERT), OWLv2 or SAM 3 (ViT + CLIP text) checkpoint
    with its processor and a small tokenizer that spells any lower-case word, loadable by
    ``instit.Detector`` and by transformers' own ``from_pretrained``.

    The SAM 3 one (``Sam3Model`` + ``Sam3Processor``, model_type ``sam3``) sees 112x112 images
    (an 8x8 ViT grid, patch 14) and proposes 10 queries."""
    import torch

    folder = Path(tempfile.mkdtemp(prefix=f"tiny-{kind}-")) if path is None else Path(path)
    letters = list(string.ascii_lowercase)
    torch.manual_seed(seed)
    if kind == "grounding-dino":
        from transformers import (
            BertTokenizer,
            GroundingDinoConfig,
            GroundingDinoForObjectDetection,
            GroundingDinoImageProcessor,
            GroundingDinoProcessor,
        )

        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *_DETECTOR_WORDS]
        words += letters + [f"##{c}" for c in letters]
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
        config = GroundingDinoConfig(
            backbone_config={
                "model_type": "swin",
                "embed_dim": 16,
                "depths": [1, 1, 1, 1],
                "num_heads": [1, 1, 1, 1],
                "window_size": 4,
                "image_size": 64,
                "out_features": ["stage2", "stage3", "stage4"],
            },
            text_config={
                "model_type": "bert",
                "vocab_size": len(words),
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 64,
            },
            d_model=32,
            encoder_layers=1,
            decoder_layers=2,  # transformers ties box heads across decoder layers: at least 2
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            num_queries=20,
            encoder_n_points=2,
            decoder_n_points=2,
            max_text_len=32,
        )
        GroundingDinoForObjectDetection(config).eval().save_pretrained(folder)
        image_processor = GroundingDinoImageProcessor(
            size={"shortest_edge": 128, "longest_edge": 192}
        )
        GroundingDinoProcessor(
            image_processor=image_processor, tokenizer=tokenizer
        ).save_pretrained(folder)
    elif kind == "owlv2":
        from transformers import (
            Owlv2Config,
            Owlv2ForObjectDetection,
            Owlv2ImageProcessor,
            Owlv2Processor,
        )

        tokenizer, vocab = _clip_tokenizer()
        # OWLv2 reads 16 text tokens: pad every query to 16 like the hub's tokenizers do
        tokenizer.backend_tokenizer.enable_padding(
            length=16, pad_id=vocab["<|endoftext|>"], pad_token="<|endoftext|>"
        )
        config = Owlv2Config(
            text_config={
                "vocab_size": len(vocab),
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "max_position_embeddings": 16,
                "bos_token_id": vocab["<|startoftext|>"],
                "eos_token_id": vocab["<|endoftext|>"],
                "pad_token_id": vocab["<|endoftext|>"],
            },
            vision_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 64,
                "patch_size": 16,
            },
            projection_dim=32,
        )
        Owlv2ForObjectDetection(config).eval().save_pretrained(folder)
        Owlv2Processor(
            image_processor=Owlv2ImageProcessor(size={"height": 64, "width": 64}),
            tokenizer=tokenizer,
        ).save_pretrained(folder)
    elif kind == "sam3":
        _tiny_sam3(folder)
    else:
        raise InstitValueError(f"kind must be 'grounding-dino', 'owlv2' or 'sam3', got {kind!r}")
    return folder


def _tiny_sam3(folder: Path) -> None:
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    tokenizer, vocab = _clip_tokenizer()
    size, hidden = _SAM3_SIZE, 32
    layer = {"hidden_size": hidden, "num_attention_heads": 2, "intermediate_size": 64}
    config = Sam3Config(
        vision_config=_tiny_sam3_vision(size, hidden),
        text_config={
            **layer,
            "vocab_size": len(vocab),
            "projection_dim": hidden,
            "num_hidden_layers": 1,
            "max_position_embeddings": 32,  # Sam3Processor pads every phrase to 32 tokens
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        geometry_encoder_config={**layer, "num_layers": 1},
        detr_encoder_config={**layer, "num_layers": 1},
        detr_decoder_config={**layer, "num_layers": 2, "num_queries": 10},
        mask_decoder_config={"hidden_size": hidden, "num_attention_heads": 2},
    )
    Sam3Model(config).eval().save_pretrained(folder)
    image_processor = Sam3ImageProcessor(
        size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
    )
    Sam3Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
