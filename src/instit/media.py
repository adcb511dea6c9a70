"""One place that turns "an image the user gave" into RGB pixels.

Every part of instit that reads an image (mark drawing, model inputs, video frames) goes through
:func:`load_image` / :func:`to_numpy_rgb`, so all of them accept the same inputs and apply the
same conversions:

* **PIL images** of any mode.  Modes with transparency (``RGBA``, ``LA``, ``PA``, ``RGBa``,
  ``La``, and ``P`` / ``L`` / ``RGB`` with a ``transparency`` entry) are **composited over
  black**, i.e. each colour is multiplied by its alpha.  Fully opaque pixels are unchanged, fully
  transparent pixels become black, whatever colour happened to be stored under them.
* **16-bit images** (``I;16*`` modes, ``I`` mode, ``uint16`` arrays) are scaled by their *full*
  range, ``v8 = round(v16 / 257)`` (0 -> 0, 65535 -> 255), never by the content's min/max, so
  the same value always gives the same 8-bit value.  ``I`` (32-bit integer) images are read as
  16-bit data and must hold values in 0..65535.
* **Float images** (``F`` mode, float arrays) must hold finite values in [0, 1];
  ``v8 = round(v * 255)``.  Anything else raises :class:`~instit.errors.MediaError` instead of
  being silently clipped.
* **numpy arrays** ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4`` of dtype ``uint8``, ``uint16``,
  ``bool`` (False -> 0, True -> 255) or float; other integer dtypes are accepted when every
  value is in 0..255.  Colour arrays are **RGB** (``RGBA``) unless ``channels="bgr"`` says they
  are BGR (``BGRA``), as OpenCV's ``cv2.imread`` / ``VideoCapture`` and supervision hand them
  out; the channels are reversed here, in one place, and nowhere else.  ``channels`` applies to
  arrays only: PIL images and files are decoded as RGB.
* **Paths** (``str`` / ``os.PathLike``) and binary file objects: the file is decoded with Pillow
  (first frame of multi-frame files) and its EXIF orientation is applied.  Files larger than
  Pillow's decompression-bomb limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``, about 179 million
  pixels by default) are refused with a :class:`~instit.errors.MediaError` before any pixel is
  decoded; raise ``PIL.Image.MAX_IMAGE_PIXELS`` (or set it to ``None``) to read larger files you
  trust.  The same limit caps the masks instit decodes from RLE or rasterises from polygons.

The caller's object is never modified: a new image or array is returned every time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from instit.errors import InstancesError, InstitTypeError, InstitValueError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    from instit.video.core import Video

ImageLike = Image.Image | np.ndarray | str | os.PathLike | IO[bytes]
"""Anything :func:`load_image` accepts."""
Channels = Literal["rgb", "bgr"]
"""The channel order of colour arrays: ``"rgb"`` (default) or ``"bgr"`` (OpenCV, supervision)."""

LoadedMedia: TypeAlias = "Image.Image | Video | list[Image.Image]"
"""Media as :func:`load_media` returns it and the layers below the public verbs take it: an RGB
PIL image, an :class:`instit.Video`, or the RGB PIL frames of a video."""

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""File suffixes of still images; any other file is read as a video (FFmpeg reads the rest)."""

_ACCEPTED = (
    "a PIL.Image.Image, a numpy array (HxW, HxWx1, HxWx3 or HxWx4), "
    "a file path (str / os.PathLike) or a binary file object"
)
# EXIF orientations that rotate the image by 90 or 270 degrees (width and height swap).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


def is_video(media: object) -> bool:
    """Whether ``media`` is a video rather than one image: the one rule every part of instit
    uses.

    A video is an :class:`instit.Video`, a list or tuple of frames, a ``TxHxWxC`` array, a
    folder (of frames) or a file whose suffix is not a still image's (:data:`IMAGE_SUFFIXES`);
    anything else (a PIL image, an ``HxW[xC]`` array, an image file, a file object) is an image.
    """
    from instit.video.core import Video

    if isinstance(media, Video):
        return True
    if isinstance(media, np.ndarray):
        return media.ndim == 4
    if isinstance(media, (list, tuple)):
        return True
    if isinstance(media, (str, os.PathLike)):
        path = Path(os.fspath(media))
        return path.is_dir() or path.suffix.lower() not in IMAGE_SUFFIXES
    return False


def load_media(source: object, *, channels: Channels = "rgb", **sampling: object) -> LoadedMedia:
    """Load what a user gave as one media item: the edge where instit reads media.

    The public verbs (``ask``, ``ask_many``, ``describe_instances`` and the model's ``prepare``,
    ``prepare_ids``, ``encode_media``, ``generate``, ``stream``) call this once, at their top
    (``ask_many`` item by item, ``generate`` batch by batch); everything below them takes only
    what it returns (:data:`LoadedMedia`).  By :func:`is_video`:

    * an image (PIL image, ``HxW[xC]`` array, image file, file object): a new RGB PIL image
      (:func:`load_image`);
    * a :class:`instit.Video`: returned as it is;
    * in-memory frames (a list or tuple of PIL images / arrays, a ``TxHxWxC`` array): a new list
      of RGB PIL frames, every frame in order and without timestamps;
    * a list or tuple of image *files*: a ``Video`` of every file (``load_video(files,
      num_frames=None)``), so that the frames keep their file names, as from a folder of them;
    * a video file or a folder of frames: a ``Video`` sampled by :func:`instit.load_video`
      (8 frames spread over the clip unless ``sampling`` says otherwise).

    ``sampling`` goes to :func:`instit.load_video` (``num_frames``, ``fps``, ...); given for
    in-memory frames it samples them into a ``Video`` too.  Arrays are RGB unless
    ``channels="bgr"``.

    Raises:
        MediaError / VideoError: unreadable media, a video without frames.
        InstitValueError: sampling arguments given for an image or a ``Video``, ``channels="bgr"``
            for anything but arrays.
    """
    from instit.video.core import Video, load_video

    if source is None:
        raise InstitTypeError(
            "media is None; pass an image (PIL image, array, file path) or a video (Video, "
            "list of frames, video file, frame folder)"
        )
    if isinstance(source, Video):
        check_channels(channels, source)
        if sampling:
            raise InstitValueError(
                f"{sorted(sampling)} apply when a video is read, but this Video is already "
                "sampled; drop them, or call instit.load_video on its source again"
            )
        return source
    if not is_video(source):
        if sampling:
            raise InstitValueError(
                f"{sorted(sampling)} apply to videos, but {_describe(source)} is an image; "
                "drop them"
            )
        return load_image(source, channels=channels)  # type: ignore[arg-type]
    if isinstance(source, (list, tuple, np.ndarray)) and not sampling:
        if len(source) == 0:
            raise MediaError("the video has no frames; pass at least one frame")
        if not all(isinstance(frame, (str, os.PathLike)) for frame in source):
            check_channels(channels)
            return [load_image(frame, channels=channels) for frame in source]
        sampling = {"num_frames": None}
    return load_video(source, channels=channels, **sampling)  # type: ignore[arg-type]


def check_loaded(media: object, where: str) -> LoadedMedia:
    """``media`` if it is :data:`LoadedMedia` (what :func:`load_media` returns), else an
    :class:`InstitTypeError` naming what ``where`` got and :func:`load_media` as the fix.

    The layers below the edge call this instead of classifying or loading media themselves.
    """
    from instit.video.core import Video

    if isinstance(media, (Image.Image, Video)):
        return media
    if isinstance(media, list) and media and all(isinstance(f, Image.Image) for f in media):
        return media
    what = type(media).__name__
    if isinstance(media, (str, os.PathLike)):
        what = f"the path {os.fspath(media)!r}"
    elif isinstance(media, list):
        kinds = sorted({type(f).__name__ for f in media})
        what = f"a list of {', '.join(kinds)}" if media else "an empty list"
    raise InstitTypeError(
        f"{where} takes loaded media (a PIL image, an instit.Video or a non-empty list of PIL "
        f"frames), got {what}; load it first with instit.load_media(source)"
    )


def load_image(image: ImageLike, *, channels: Channels = "rgb") -> Image.Image:
    """Return ``image`` as a new RGB :class:`PIL.Image.Image`.

    See the module documentation for the accepted inputs and the conversion rules (alpha is
    composited over black, 16-bit data is scaled by its full range, floats must be in [0, 1]).
    Arrays are read as RGB; pass ``channels="bgr"`` for the BGR arrays of OpenCV and
    supervision.

    Raises:
        MediaError: the file is missing or not an image, or the pixel data cannot be converted.
        InstitTypeError: ``image`` is of an unsupported type.
        InstitValueError: ``channels`` is not ``"rgb"``/``"bgr"``, or ``"bgr"`` for a
            non-array.
    """
    check_channels(channels, image)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_to_rgb(image, "array", channels))
    return _pil_to_rgb(_open(image))


def to_numpy_rgb(image: ImageLike, *, channels: Channels = "rgb") -> np.ndarray:
    """Return ``image`` as a new, writable ``HxWx3`` ``uint8`` RGB array.

    Same inputs, ``channels`` and conversion rules as :func:`load_image`.
    """
    if isinstance(image, np.ndarray):
        check_channels(channels, image)
        return _array_to_rgb(image, "array", channels)
    return np.array(load_image(image, channels=channels), dtype=np.uint8)


def check_channels(channels: object, image: object = None) -> None:
    """Raise a clear error unless ``channels`` is ``"rgb"`` or ``"bgr"``; ``"bgr"`` only
    describes arrays, so it is refused for an ``image`` that is given and is not one."""
    if channels not in ("rgb", "bgr"):
        raise InstitValueError(
            f"channels={channels!r} is not a channel order; pass channels='rgb' (the default) "
            "or channels='bgr' for arrays from OpenCV or supervision"
        )
    if channels == "bgr" and image is not None and not _is_array(image):
        raise InstitValueError(
            f"channels='bgr' describes numpy arrays, but this is a {type(image).__name__}: PIL "
            "images and files are always decoded as RGB; drop channels='bgr' for them"
        )


def _is_array(value: object) -> bool:
    """numpy arrays, and array-likes such as torch tensors (video frames)."""
    return isinstance(value, np.ndarray) or (
        hasattr(value, "__array__") and not isinstance(value, Image.Image)
    )


def image_size(image: ImageLike) -> tuple[int, int]:
    """Return ``(width, height)`` of ``image`` without decoding pixels where possible.

    For files only the header is read; an EXIF orientation that rotates by 90 degrees swaps
    the two values, so the result always matches ``load_image(image).size``.
    """
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        _check_array_layout(image, "array")
        return int(image.shape[1]), int(image.shape[0])
    source = _describe(image)
    with _open_lazy(image) as opened:
        width, height = opened.size
        try:
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # a corrupt EXIF block: load_image ignores it as well
            orientation = 1
    if width == 0 or height == 0:
        raise MediaError(f"{source} has zero width or height; pass a non-empty image")
    if orientation in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


# -- files -----------------------------------------------------------------------------------


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"image file {os.fspath(source)!r}"
    return "image file object"


def _open_lazy(source: object) -> Image.Image:
    """Open ``source`` with Pillow (header only), turning every failure into a MediaError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise InstitTypeError(
            "load_image got raw bytes; wrap them in io.BytesIO(data) or pass "
            + _ACCEPTED.removeprefix("a ")
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        try:
            exists = path.exists()
        except OSError as exc:  # a name too long for the file system
            raise MediaError(f"cannot use {str(path)[:200]!r} as an image path: {exc}") from exc
        if not exists:
            raise MediaError(f"image file {str(path)!r} does not exist; check the path")
        if path.is_dir():
            raise MediaError(f"{str(path)!r} is a directory, not an image file; pass a file")
    elif not hasattr(source, "read"):
        raise InstitTypeError(
            f"cannot read an image from {type(source).__name__}; pass {_ACCEPTED}"
        )
    try:
        return Image.open(source)  # type: ignore[arg-type]
    except Image.DecompressionBombError as exc:
        raise too_large_error(_describe(source), exc) from exc
    except UnidentifiedImageError as exc:
        raise MediaError(
            f"{_describe(source)} is not an image Pillow can decode; pass a PNG, JPEG, ... file"
        ) from exc
    except OSError as exc:
        raise MediaError(f"cannot read {_describe(source)}: {exc}; check the file") from exc


def _open(source: object) -> Image.Image:
    """Decode ``source`` fully (first frame), apply EXIF orientation, close the file."""
    with _open_lazy(source) as opened:
        try:
            opened.load()
            return ImageOps.exif_transpose(opened)
        except Image.DecompressionBombError as exc:
            raise too_large_error(_describe(source), exc) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaError(
                f"{_describe(source)} is truncated or corrupt ({exc}); re-export the file"
            ) from exc


def pixel_limit() -> int | None:
    """The most pixels instit decodes into one image or mask, or ``None`` for no limit.

    This is where Pillow raises ``DecompressionBombError``: ``2 * PIL.Image.MAX_IMAGE_PIXELS``
    (178,956,970 pixels by default).  Set ``PIL.Image.MAX_IMAGE_PIXELS`` to change it for files,
    RLE masks and polygon masks alike (``None`` removes the limit).
    """
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def too_large_error(
    what: str,
    exc: Exception | None = None,
    *,
    pixels: int | None = None,
    times: int = 1,
    error: type[InstitValueError] = MediaError,
) -> InstitValueError:
    """The error (a :class:`MediaError` unless ``error``) for ``what`` exceeding ``times``
    :func:`pixel_limit`, described by Pillow's ``exc`` or a pixel count."""
    detail = f"{exc}" if exc is not None else f"{pixels:,} pixels"
    multiple = f"{times} x " if times > 1 else ""
    return error(
        f"{what} is too large ({detail}): more than {multiple}Pillow's decompression-bomb "
        f"limit of {pixel_limit() or 0:,} pixels; if you trust it, raise the limit with "
        "PIL.Image.MAX_IMAGE_PIXELS = <pixels> (half the limit), or None to disable it"
    )


# -- PIL images ------------------------------------------------------------------------------


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    if image.width == 0 or image.height == 0:
        raise MediaError(f"the image has size {image.size} (zero width or height); pass pixels")
    try:  # an Image.open() result decodes only now: its file may be truncated or closed
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(
            f"the PIL image cannot be decoded ({exc}): its file is truncated, corrupt or "
            "closed; re-export the file, or pass its path"
        ) from exc
    rgb = _converted_to_rgb(image)
    orientation = _orientation(image)
    if orientation != 1:  # pixels made through arrays carry no metadata: keep the tag, so that
        exif = rgb.getexif()  # orientation_hint still explains a size mismatch once loaded
        if exif.get(_EXIF_ORIENTATION) != orientation:
            exif[_EXIF_ORIENTATION] = orientation
            rgb.info["exif"] = exif.tobytes()
    return rgb


def _converted_to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image.copy()
    if mode.startswith("I;16") or mode == "F":
        return Image.fromarray(_array_to_rgb(np.asarray(image), f"{mode} image"))
    if mode == "I":  # 32-bit integer images carry 16-bit data (e.g. 16-bit PNG, TIFF)
        data = np.asarray(image)
        low, high = int(data.min()), int(data.max())
        if low < 0 or high > 65535:
            raise MediaError(
                f"mode 'I' image has values in [{low}, {high}]; expected 16-bit data in "
                "0..65535 (rescale it to 0..255 and pass a uint8 array)"
            )
        return Image.fromarray(_array_to_rgb(data.astype(np.uint16), "I image"))
    if mode == "La":  # premultiplied; Pillow converts it to LA only
        image = image.convert("LA")
    if "A" in mode or "a" in mode or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return Image.fromarray(_composite_on_black(rgba))
    try:
        return image.convert("RGB")
    except ValueError as exc:
        raise MediaError(
            f"cannot convert a PIL image of mode {mode!r} to RGB ({exc}); convert it yourself"
        ) from exc


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """``HxWx4`` uint8 -> ``HxWx3`` uint8, colour * alpha / 255 rounded."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


# -- numpy arrays ----------------------------------------------------------------------------


def _check_array_layout(array: np.ndarray, what: str) -> None:
    shape = array.shape
    ok = array.ndim == 2 or (array.ndim == 3 and shape[2] in (1, 3, 4))
    if not ok:
        hint = ""
        if array.ndim == 3 and shape[0] in (1, 3, 4):
            hint = " (it looks channels-first: use array.transpose(1, 2, 0))"
        raise MediaError(f"{what} has shape {shape}; expected HxW, HxWx1, HxWx3 or HxWx4{hint}")
    if shape[0] == 0 or shape[1] == 0:
        raise MediaError(f"{what} has shape {shape} (zero width or height); pass pixels")


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Scale any supported dtype to a new uint8 array (same shape)."""
    dtype = array.dtype
    if dtype == np.uint8:
        return array.copy()
    if dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all():
            raise MediaError(f"{what} contains NaN or infinite values; replace them first")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise MediaError(
                f"float {what} has values in [{low:g}, {high:g}]; float images must be in "
                "[0, 1] (divide by 255 for 0..255 data, or convert to uint8 yourself)"
            )
        return np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    if np.issubdtype(dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise MediaError(
                f"{what} of dtype {dtype} has values in [{low}, {high}]; integer images other "
                "than uint16 must be in 0..255 (convert to uint8 or uint16 yourself)"
            )
        return array.astype(np.uint8)
    raise MediaError(f"{what} has dtype {dtype}; use uint8, uint16, bool or float in [0, 1]")


def _array_to_rgb(array: np.ndarray, what: str, channels: Channels = "rgb") -> np.ndarray:
    """Any supported array -> new C-contiguous ``HxWx3`` uint8 array (``channels="bgr"``:
    BGR / BGRA input, reversed to RGB here)."""
    _check_array_layout(array, what)
    pixels = _to_uint8(array, what)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    count = pixels.shape[2]
    if channels == "bgr" and count > 1:
        pixels = pixels[:, :, [2, 1, 0, 3][:count]]
    if count == 1:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    if count == 4:
        return _composite_on_black(pixels)
    return np.ascontiguousarray(pixels)


# -- EXIF orientation of PIL image objects ---------------------------------------------------


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a corrupt EXIF block: treated as no orientation, like load_image
        return 1


@contextmanager
def orientation_hint(image: object) -> Iterator[None]:
    """Add a note about EXIF orientation to an :class:`InstancesError` raised inside.

    A PIL image *object* is used as it is stored (only files are rotated by their EXIF tag),
    so instances made for the rotated view a viewer shows do not fit it.  When ``image`` is a
    PIL image whose orientation tag rotates it by 90 or 270 degrees, the error says so.
    """
    try:
        yield
    except InstancesError as exc:
        if not isinstance(image, Image.Image):
            raise
        orientation = _orientation(image)
        if orientation not in _SWAPPING_ORIENTATIONS:
            raise
        width, height = image.size
        raise type(exc)(
            f"{exc} (note: this PIL image is stored as {width}x{height} but its EXIF "
            f"orientation tag ({orientation}) rotates it to {height}x{width} in viewers; if the "
            "instances were made for the rotated view, pass PIL.ImageOps.exif_transpose(image) "
            "or the file path, which instit rotates by the tag)"
        ) from exc
