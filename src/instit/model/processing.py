"""Pixel values, image sizes and visual token counts, exactly as LLaVA-NeXT computes them.

Everything here reproduces the Inst-It authors' LLaVA-NeXT fork (``llava/mm_utils.py`` and
``llava/model/llava_arch.py``), checked against the conformance fixtures:

* images (``anyres`` / ``anyres_max_N``): pick the grid pinpoint that keeps the most pixels (then
  wastes the least), resize to fit (bicubic), paste centred on a black canvas, cut tiles
  row-major; the first view is the whole image squashed to ``S x S``;
* video frames: the tower's own image processor, per frame (SigLIP: squash to ``S x S``; CLIP:
  shortest edge to ``S`` and centre crop);
* normalisation: ``uint8 -> float64 * (1/255) -> float32``, then ``(x - mean) / std`` in float32;
* token counts: base view + the unpadded feature grid (truncating unpad arithmetic, the
  ``anyres_max`` downscale) with one newline per row; video frames pooled to
  ``ceil(side/2)**2`` tokens each, without newlines.

:func:`image_layout` is the single source of the feature-grid arithmetic; the model code packs
features with the same numbers, so counts and features cannot disagree.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from instit.errors import CheckpointError, InstitTypeError, MediaError

if TYPE_CHECKING:
    import torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

_MERGE_TYPES = ("flat", "spatial", "spatial_unpad")


def anyres_max_patches(image_aspect_ratio: str) -> int | None:
    """``9`` for ``"anyres_max_9"``, ``None`` for plain ``"anyres"`` (no downscale)."""
    match = re.fullmatch(r"anyres_max_(\d+)", image_aspect_ratio)
    return int(match.group(1)) if match else None


def tower_mean_std(
    tower: Literal["siglip", "clip"], preprocessor: Mapping[str, Any] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel ``(mean, std)`` of a vision tower.

    The tower's defaults (SigLIP 0.5 / 0.5, OpenAI CLIP's statistics), overridden by
    ``image_mean`` / ``image_std`` of ``preprocessor`` (a ``preprocessor_config.json``) when one
    is given.  The callers decide which file counts: the reference ignores a SigLIP tower's file.
    """
    if tower == "siglip":
        mean, std = SIGLIP_MEAN, SIGLIP_STD
    else:
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    if preprocessor is None:
        return mean, std
    return tuple(preprocessor.get("image_mean", mean)), tuple(preprocessor.get("image_std", std))


@dataclass(frozen=True)
class VisionSpec:
    """Everything preprocessing and token counting need to know about a checkpoint.

    Attributes:
        tower: ``"siglip"`` or ``"clip"`` (decides how video frames are resized).
        image_size: the tower's input side ``S`` (384 SigLIP, 336 CLIP).
        patch_size: the tower's patch size (14); ``S // patch_size`` features per side.
        mean, std: per-channel normalisation.
        image_aspect_ratio: ``"anyres"``, ``"anyres_max_<N>"``, ``"pad"`` or ``"square"``.
        grid_pinpoints: anyres canvas sizes as ``(width, height)``, multiples of ``S``.
        patch_merge_type: LLaVA's ``mm_patch_merge_type`` (``"spatial_unpad"`` for Inst-It).
    """

    tower: Literal["siglip", "clip"]
    image_size: int
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_aspect_ratio: str = "anyres"
    grid_pinpoints: tuple[tuple[int, int], ...] = ()
    patch_merge_type: str = "spatial_unpad"

    def __post_init__(self) -> None:
        def bad(problem: str) -> CheckpointError:
            return CheckpointError(
                f"unsupported vision settings: {problem}; check the checkpoint's config.json "
                "(mm_vision_tower, image_aspect_ratio, image_grid_pinpoints, mm_patch_merge_type)"
            )

        if self.tower not in ("siglip", "clip"):
            raise bad(f"tower {self.tower!r} is neither 'siglip' nor 'clip'")
        if self.image_size <= 0 or self.patch_size <= 0 or self.image_size < self.patch_size:
            raise bad(f"image_size={self.image_size}, patch_size={self.patch_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(s > 0 for s in self.std):
            raise bad(f"mean={self.mean}, std={self.std} (need 3 values, std > 0)")
        if self.patch_merge_type not in _MERGE_TYPES:
            raise bad(f"mm_patch_merge_type {self.patch_merge_type!r} (known: {_MERGE_TYPES})")
        if self.anyres:
            if not self.grid_pinpoints:
                raise bad(f"image_aspect_ratio {self.image_aspect_ratio!r} without grid pinpoints")
            for width, height in self.grid_pinpoints:
                if width <= 0 or height <= 0 or width % self.image_size or height % self.image_size:
                    raise bad(
                        f"grid pinpoint {(width, height)} is not a multiple of {self.image_size}"
                    )
        elif self.image_aspect_ratio not in ("pad", "square"):
            raise bad(f"image_aspect_ratio {self.image_aspect_ratio!r}")

    @property
    def anyres(self) -> bool:
        """Whether images are tiled (``anyres`` or ``anyres_max_<N>``)."""
        return self.image_aspect_ratio == "anyres" or "anyres_max" in self.image_aspect_ratio

    @property
    def max_tiles(self) -> int | None:
        """``N`` of ``anyres_max_<N>`` (the feature-grid budget in tiles), else ``None``."""
        return anyres_max_patches(self.image_aspect_ratio)

    @property
    def patches_per_side(self) -> int:
        """Features per side of one tile (27 for SigLIP-384, 24 for CLIP-336)."""
        return self.image_size // self.patch_size

    @property
    def video_side(self) -> int:
        """Features per side of one pooled video frame (``ceil(side / 2)``: 14 or 12)."""
        return math.ceil(self.patches_per_side / 2)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_llava_config(
        cls,
        config: Mapping[str, Any],
        tower_config: Mapping[str, Any] | None = None,
        *,
        preprocessor_config: Mapping[str, Any] | None = None,
    ) -> VisionSpec:
        """Build the spec from a LLaVA-NeXT checkpoint's ``config.json``.

        Args:
            config: the checkpoint's config (``mm_vision_tower``, ``image_aspect_ratio``,
                ``image_grid_pinpoints``, ``mm_patch_merge_type``).
            tower_config: the vision tower's ``config.json`` (a full ``SiglipModel`` /
                ``CLIPModel`` config or a vision config) for ``image_size`` and ``patch_size``.
                Without it they are read from the tower name (``...patch14-384``).
            preprocessor_config: the tower's ``preprocessor_config.json``; only CLIP's
                mean/std are taken from it (default: OpenAI CLIP's).  The reference ignores the
                SigLIP tower's file and always uses mean = std = 0.5.
        """
        name = config.get("mm_vision_tower") or config.get("vision_tower")
        if not isinstance(name, str) or not name:
            raise CheckpointError(
                "the checkpoint config has no mm_vision_tower; this is not a LLaVA-NeXT "
                "checkpoint, load an Inst-It checkpoint (its config.json names the tower)"
            )
        # LLaVA-NeXT's build_vision_tower tests for CLIP first, then SigLIP
        if "clip" in name or name.startswith(("openai", "laion")):
            tower: Literal["siglip", "clip"] = "clip"
            mean, std = tower_mean_std(tower, preprocessor_config)
        elif "siglip" in name:
            tower = "siglip"
            mean, std = tower_mean_std(tower)
        else:
            raise CheckpointError(
                f"vision tower {name!r} is neither CLIP nor SigLIP; instit supports the Inst-It "
                "checkpoints' towers only"
            )
        image_size, patch_size = _tower_input_size(name, tower_config)
        return cls(
            tower=tower,
            image_size=image_size,
            patch_size=patch_size,
            mean=mean,
            std=std,
            image_aspect_ratio=str(config.get("image_aspect_ratio") or "square"),
            grid_pinpoints=parse_grid_pinpoints(config.get("image_grid_pinpoints"), image_size),
            patch_merge_type=str(config.get("mm_patch_merge_type", "flat")),
        )


def _tower_input_size(name: str, tower_config: Mapping[str, Any] | None) -> tuple[int, int]:
    if tower_config is not None:
        vision = tower_config.get("vision_config") or tower_config
        if "image_size" in vision and "patch_size" in vision:
            return int(vision["image_size"]), int(vision["patch_size"])
    match = re.search(r"patch(\d+)-(\d+)", name)
    if match is None:
        raise CheckpointError(
            f"cannot tell the input size of vision tower {name!r}: pass its config.json "
            "(image_size, patch_size) as tower_config"
        )
    return int(match.group(2)), int(match.group(1))


def parse_grid_pinpoints(value: object, image_size: int) -> tuple[tuple[int, int], ...]:
    """Grid pinpoints from a config value, as ``(width, height)`` pairs.

    Accepts a list of pairs, its string form, or LLaVA's range form ``"(1x1),...,(6x6)"``
    (tile counts, multiplied by ``image_size``).  ``None`` gives ``()``.
    """
    if value is None:
        return ()
    try:
        if isinstance(value, str):
            if "x" in value:
                found = re.findall(r"\((\d+)x(\d+)\)", value)
                (w0, h0), (w1, h1) = map(int, found[0]), map(int, found[-1])
                return tuple(
                    (w * image_size, h * image_size)
                    for w in range(w0, w1 + 1)
                    for h in range(h0, h1 + 1)
                )
            value = ast.literal_eval(value)
        return tuple((int(w), int(h)) for w, h in value)  # type: ignore[union-attr]
    except (ValueError, TypeError, SyntaxError, IndexError) as error:
        raise CheckpointError(
            f"image_grid_pinpoints {value!r} is not a list of [width, height] pairs; fix the "
            "checkpoint's config.json"
        ) from error


# -- anyres geometry ------------------------------------------------------------------------------


def select_best_resolution(
    image_size_wh: tuple[int, int], pinpoints: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """The pinpoint ``(width, height)`` that keeps the most image pixels, then wastes the least."""
    width, height = image_size_wh
    best = pinpoints[0]
    best_effective, best_wasted = 0, math.inf
    for target_w, target_h in pinpoints:
        scale = min(target_w / width, target_h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = target_w * target_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (target_w, target_h), effective, wasted
    return best


def fitted_size(image_size_wh: tuple[int, int], target_wh: tuple[int, int]) -> tuple[int, int]:
    """Size ``(width, height)`` the image is resized to before it is centred on the canvas."""
    width, height = image_size_wh
    target_w, target_h = target_wh
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        return target_w, min(math.ceil(height * scale_w), target_h)
    return min(math.ceil(width * scale_h), target_w), target_h


def unpadded_grid(image_size_wh: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns of a padded-canvas feature grid that hold the image (``unpad_image``).

    The reference truncates (``int(orig * scale)``) and removes ``(current - new) // 2`` from
    both sides, so an odd difference keeps one row/column more than ``int(orig * scale)``.

    Args:
        image_size_wh: the original image size (width, height).
        grid_hw: the feature grid (rows, columns) of the whole padded canvas.

    Returns:
        ``(rows, cols)`` slices: ``features[:, rows, cols]`` of a ``[C, H, W]`` grid.
    """
    width, height = image_size_wh
    rows, cols = grid_hw
    if width / height > cols / rows:  # padding was added above and below
        new_rows = int(height * (cols / width))
        padding = (rows - new_rows) // 2
        return slice(padding, rows - padding), slice(0, cols)
    new_cols = int(width * (rows / height))
    padding = (cols - new_cols) // 2
    return slice(0, rows), slice(padding, cols - padding)


def anyres_max_size(grid_hw: tuple[int, int], side: int, max_tiles: int) -> tuple[int, int] | None:
    """Size the unpadded grid is bilinearly resized to under ``anyres_max_<max_tiles>``.

    ``None`` when the grid stays as it is (``sqrt(h*w / (max_tiles*side**2)) <= 1.1``).
    """
    rows, cols = grid_hw
    times = math.sqrt(rows * cols / (max_tiles * side**2))
    if times > 1.1:
        return int(rows // times), int(cols // times)
    return None


@dataclass(frozen=True)
class ImageLayout:
    """How an image's visual tokens are laid out (everything in feature units but the sizes).

    Attributes:
        image_size_wh: the original image size (width, height), as the reference's
            ``image_sizes``.
        best_resolution_wh: the anyres canvas (``None`` when not tiled).
        tiles_wh: tiles across and down (``(0, 0)`` when not tiled).
        grid_hw: feature grid of the whole canvas (rows, columns).
        rows, cols: what :func:`unpadded_grid` keeps of it (``None`` without ``unpad``).
        unpadded_hw: grid size after unpadding.
        resized_hw: target of the ``anyres_max`` bilinear resize, ``None`` when not resized.
        final_hw: grid that is emitted (rows, columns), before the newline column.
        base_tokens: tokens of the squashed base view.
        newline_tokens: one per emitted row (``spatial_unpad`` only).
        num_tokens: total visual tokens spliced in for the image.
    """

    image_size_wh: tuple[int, int]
    best_resolution_wh: tuple[int, int] | None
    tiles_wh: tuple[int, int]
    grid_hw: tuple[int, int]
    rows: slice | None
    cols: slice | None
    unpadded_hw: tuple[int, int]
    resized_hw: tuple[int, int] | None
    final_hw: tuple[int, int]
    base_tokens: int
    newline_tokens: int
    num_tokens: int

    @property
    def num_views(self) -> int:
        """Images fed to the tower: the base view plus the tiles."""
        return 1 + self.tiles_wh[0] * self.tiles_wh[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (slices as ``[start, stop]``)."""
        data = asdict(self)
        for key in ("rows", "cols"):
            value = data[key]
            data[key] = None if value is None else [value.start, value.stop]
        data["num_views"] = self.num_views
        return data


def _check_size(image_size_wh: object) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in image_size_wh)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InstitTypeError(
            f"image size must be a (width, height) pair of ints, got {image_size_wh!r}"
        ) from None
    if width <= 0 or height <= 0:
        raise MediaError(f"image size {(width, height)} is empty; pass a non-empty image")
    return width, height


def image_layout(image_size_wh: tuple[int, int], spec: VisionSpec) -> ImageLayout:
    """The reference's feature-grid arithmetic for one image of ``image_size_wh`` (W, H)."""
    size = _check_size(image_size_wh)
    side = spec.patches_per_side
    base = side * side
    if not spec.anyres:
        # pad/square: one view, encoded as a plain batch (no grid, no newline)
        square = (side, side)
        return ImageLayout(
            image_size_wh=size,
            best_resolution_wh=None,
            tiles_wh=(0, 0),
            grid_hw=square,
            rows=None,
            cols=None,
            unpadded_hw=square,
            resized_hw=None,
            final_hw=square,
            base_tokens=base,
            newline_tokens=0,
            num_tokens=base,
        )
    best = select_best_resolution(size, spec.grid_pinpoints)
    tiles = (best[0] // spec.image_size, best[1] // spec.image_size)
    grid = (tiles[1] * side, tiles[0] * side)
    if spec.patch_merge_type != "spatial_unpad":
        tokens = base + grid[0] * grid[1]
        return ImageLayout(size, best, tiles, grid, None, None, grid, None, grid, base, 0, tokens)
    rows, cols = unpadded_grid(size, grid)
    unpadded = (len(range(*rows.indices(grid[0]))), len(range(*cols.indices(grid[1]))))
    resized = None
    if spec.max_tiles is not None:
        resized = anyres_max_size(unpadded, side, spec.max_tiles)
    final = resized or unpadded
    tokens = base + final[0] * (final[1] + 1)
    return ImageLayout(
        size, best, tiles, grid, rows, cols, unpadded, resized, final, base, final[0], tokens
    )


def image_token_count(image_size_wh: tuple[int, int], spec: VisionSpec) -> int:
    """Visual tokens the reference splices in for an image of ``image_size_wh`` (W, H)."""
    return image_layout(image_size_wh, spec).num_tokens


def video_token_count(num_frames: int, spec: VisionSpec) -> int:
    """Visual tokens of a video: ``ceil(side/2)**2`` per frame (196 SigLIP-384, 144 CLIP-336)."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int):
        raise InstitTypeError(f"num_frames must be an int, got {type(num_frames).__name__}")
    if num_frames <= 0:
        raise MediaError(f"a video needs at least one frame, got num_frames={num_frames}")
    return num_frames * spec.video_side**2


# -- pixels ---------------------------------------------------------------------------------------


def _rgb(image: object, what: str) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InstitTypeError(
            f"{what} must be a PIL image, got {type(image).__name__}; load files, arrays or "
            "URLs with instit.media.load_image"
        )
    if image.width <= 0 or image.height <= 0:
        raise MediaError(f"{what} is empty ({image.width}x{image.height}); pass a real image")
    if image.mode != "RGB" or "transparency" in image.info:
        from instit.media import load_image

        image = load_image(image)
    return image


def _lut(spec: VisionSpec) -> np.ndarray:
    """Per-channel table uint8 -> normalised float32, bit-identical to the reference's steps."""
    scaled = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None]
    return (scaled[None, :] - mean) / std


def _normalise(views: Sequence[Image.Image], spec: VisionSpec) -> torch.Tensor:
    import torch

    lut = _lut(spec)
    side = spec.image_size
    out = np.empty((len(views), 3, side, side), dtype=np.float32)
    for index, view in enumerate(views):
        pixels = np.asarray(view, dtype=np.uint8)
        for channel in range(3):
            out[index, channel] = lut[channel][pixels[:, :, channel]]
    return torch.from_numpy(out)


def _squash(image: Image.Image, side: int) -> Image.Image:
    return image.resize((side, side), Image.Resampling.BICUBIC)


def _shortest_edge_crop(image: Image.Image, side: int) -> Image.Image:
    """CLIP's processor: shortest edge to ``side``, centre crop.

    The long edge is truncated, ``int(side * long / short)``, as transformers'
    ``get_resize_output_image_size`` does (854x480 at 336 gives 597x336, not 598x336).
    """
    width, height = image.size
    if width <= height:
        size = (side, int(side * height / width))
    else:
        size = (int(side * width / height), side)
    resized = image.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - side) // 2, (size[1] - side) // 2
    return resized.crop((left, top, left + side, top + side))


def _tower_view(image: Image.Image, spec: VisionSpec) -> Image.Image:
    if spec.tower == "clip":
        return _shortest_edge_crop(image, spec.image_size)
    return _squash(image, spec.image_size)


def anyres_views(image: Image.Image, spec: VisionSpec) -> list[Image.Image]:
    """The reference's anyres views of an RGB image: squashed base view, then tiles row-major."""
    side = spec.image_size
    best = select_best_resolution(image.size, spec.grid_pinpoints)
    fitted = fitted_size(image.size, best)
    canvas = Image.new("RGB", best, (0, 0, 0))
    canvas.paste(
        image.resize(fitted, Image.Resampling.BICUBIC),
        ((best[0] - fitted[0]) // 2, (best[1] - fitted[1]) // 2),
    )
    tiles = [
        canvas.crop((left, top, left + side, top + side))
        for top in range(0, best[1], side)
        for left in range(0, best[0], side)
    ]
    return [_squash(image, side), *tiles]


def process_image(image: Image.Image, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pixel values of one image, as LLaVA-NeXT's ``process_images``.

    Args:
        image: a PIL image; other modes than RGB (and RGB with a transparency key) go through
            ``instit.media.load_image`` first.  It is not modified.
        spec: the checkpoint's :class:`VisionSpec`.

    Returns:
        ``pixel_values`` float32 ``[1 + tiles, 3, S, S]`` (``[1, 3, S, S]`` for pad/square) and
        the image size ``(width, height)`` the model needs (the reference's ``image_sizes``).
    """
    rgb = _rgb(image, "image")
    if spec.anyres:
        views = anyres_views(rgb, spec)
    elif spec.image_aspect_ratio == "pad":
        background = tuple(int(value * 255) for value in spec.mean)
        longest = max(rgb.size)
        square = Image.new("RGB", (longest, longest), background)
        square.paste(rgb, ((longest - rgb.width) // 2, (longest - rgb.height) // 2))
        views = [_tower_view(square, spec)]
    else:
        views = [_tower_view(rgb, spec)]
    return _normalise(views, spec), rgb.size


def process_frames(frames: Sequence[Image.Image], spec: VisionSpec) -> torch.Tensor:
    """Pixel values of video frames, ``[F, 3, S, S]`` float32, each through the tower's processor.

    SigLIP frames are squashed to ``S x S``; CLIP frames are resized to shortest edge ``S`` and
    centre-cropped.  The frames are not modified.
    """
    if isinstance(frames, Image.Image) or not isinstance(frames, Sequence):
        raise InstitTypeError(
            f"frames must be a list of PIL images, got {type(frames).__name__}; for a Video "
            "pass video.frames, for one image use process_image"
        )
    if not frames:
        raise MediaError("a video needs at least one frame, got an empty list")
    views = [_tower_view(_rgb(frame, f"frames[{i}]"), spec) for i, frame in enumerate(frames)]
    return _normalise(views, spec)
