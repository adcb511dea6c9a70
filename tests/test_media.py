"""instit.media: every accepted image form becomes the documented RGB pixels."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instit.errors import InstitError, InstitTypeError, MediaError
from instit.media import image_size, load_image, to_numpy_rgb


def pattern(height: int = 4, width: int = 6) -> np.ndarray:
    """An asymmetric RGB test pattern (every pixel different)."""
    values = np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)
    return values * np.uint8(3)


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.array(image)


# -- PIL modes -------------------------------------------------------------------------------


def test_rgb_image_is_copied_not_returned() -> None:
    source = Image.fromarray(pattern())
    result = load_image(source)
    assert result is not source
    np.testing.assert_array_equal(pixels(result), pattern())
    result.putpixel((0, 0), (1, 2, 3))
    assert source.getpixel((0, 0)) == tuple(pattern()[0, 0])


def test_rgba_is_composited_over_black() -> None:
    rgba = np.zeros((1, 4, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: unchanged
    rgba[0, 1] = (200, 100, 50, 128)  # half: colour * 128 / 255, rounded
    rgba[0, 2] = (255, 255, 255, 0)  # transparent white: black, not white
    rgba[0, 3] = (10, 20, 30, 1)
    source = Image.fromarray(rgba)
    before = np.array(source)
    out = pixels(load_image(source))
    np.testing.assert_array_equal(out[0, 0], (200, 100, 50))
    np.testing.assert_array_equal(out[0, 1], (100, 50, 25))
    np.testing.assert_array_equal(out[0, 2], (0, 0, 0))
    np.testing.assert_array_equal(out[0, 3], (0, 0, 0))
    assert source.mode == "RGBA"
    np.testing.assert_array_equal(np.array(source), before)


def test_la_and_l_become_grey() -> None:
    la = Image.fromarray(np.array([[[200, 255], [200, 0], [90, 51]]], dtype=np.uint8), mode="LA")
    np.testing.assert_array_equal(
        pixels(load_image(la))[0], [[200, 200, 200], [0, 0, 0], [18, 18, 18]]
    )
    grey = Image.fromarray(np.array([[0, 7, 255]], dtype=np.uint8))
    assert grey.mode == "L"
    np.testing.assert_array_equal(pixels(load_image(grey))[0], [[0] * 3, [7] * 3, [255] * 3])


def test_palette_with_and_without_transparency() -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    np.testing.assert_array_equal(pixels(load_image(palette_image))[0], [[255, 0, 0], [0, 0, 255]])
    palette_image.info["transparency"] = 1  # index 1 (blue) is transparent
    np.testing.assert_array_equal(pixels(load_image(palette_image))[0], [[255, 0, 0], [0, 0, 0]])
    assert palette_image.mode == "P"


def test_transparent_palette_png_file(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([0, 255, 0, 250, 250, 250] + [0] * 762)
    palette_image.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    palette_image.save(path, transparency=1)
    np.testing.assert_array_equal(pixels(load_image(path))[0], [[0, 255, 0], [0, 0, 0]])


def test_cmyk_and_bilevel() -> None:
    cmyk = Image.new("CMYK", (2, 1))
    cmyk.putpixel((0, 0), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 255, 255, 0))
    np.testing.assert_array_equal(pixels(load_image(cmyk))[0], [[255, 255, 255], [255, 0, 0]])
    bilevel = Image.fromarray(np.array([[True, False]]))
    assert bilevel.mode == "1"
    np.testing.assert_array_equal(pixels(load_image(bilevel))[0], [[255] * 3, [0] * 3])


def test_sixteen_bit_modes_scale_by_full_range() -> None:
    data = np.array([[0, 128, 129, 257, 32896, 65535]], dtype=np.uint16)
    expected = [0, 0, 1, 1, 128, 255]  # round(v / 257)
    image16 = Image.fromarray(data)
    assert image16.mode == "I;16"
    np.testing.assert_array_equal(pixels(load_image(image16))[0, :, 0], expected)
    image32 = Image.fromarray(data.astype(np.int32))
    assert image32.mode == "I"
    np.testing.assert_array_equal(pixels(load_image(image32))[0, :, 0], expected)


def test_sixteen_bit_png_file(tmp_path: Path) -> None:
    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 65535, 25700]], dtype=np.uint16)).save(path)
    np.testing.assert_array_equal(pixels(load_image(path))[0, :, 1], [0, 255, 100])


def test_mode_i_out_of_16_bit_range_is_refused() -> None:
    image = Image.fromarray(np.array([[-5, 70000]], dtype=np.int32))
    with pytest.raises(MediaError, match=r"0\.\.65535"):
        load_image(image)


def test_float_mode_f() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert image.mode == "F"
    np.testing.assert_array_equal(pixels(load_image(image))[0, :, 2], [0, 128, 255])
    too_bright = Image.fromarray(np.array([[0.0, 200.0]], dtype=np.float32))
    with pytest.raises(MediaError, match=r"\[0, 1\]"):
        load_image(too_bright)


# -- numpy arrays ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected_first_pixel"),
    [
        (np.full((2, 3), 9, dtype=np.uint8), (9, 9, 9)),
        (np.full((2, 3, 1), 9, dtype=np.uint8), (9, 9, 9)),
        (np.full((2, 3, 3), (1, 2, 3), dtype=np.uint8), (1, 2, 3)),
        (np.full((2, 3, 4), (200, 100, 50, 128), dtype=np.uint8), (100, 50, 25)),
        (np.full((2, 3), 65535, dtype=np.uint16), (255, 255, 255)),
        (np.full((2, 3, 3), 257, dtype=np.uint16), (1, 1, 1)),
        (np.ones((2, 3), dtype=bool), (255, 255, 255)),
        (np.full((2, 3, 3), 0.2, dtype=np.float64), (51, 51, 51)),
        (np.full((2, 3), 1.0, dtype=np.float16), (255, 255, 255)),
        (np.full((2, 3, 3), 17, dtype=np.int64), (17, 17, 17)),
    ],
    ids=["hw", "hw1", "hw3", "hw4", "u16", "u16x3", "bool", "f64", "f16", "int64"],
)
def test_array_forms(array: np.ndarray, expected_first_pixel: tuple[int, int, int]) -> None:
    before = array.copy()
    image = load_image(array)
    assert image.size == (3, 2)
    assert tuple(pixels(image)[0, 0]) == expected_first_pixel
    rgb = to_numpy_rgb(array)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3) and rgb.flags.writeable
    assert tuple(rgb[0, 0]) == expected_first_pixel
    np.testing.assert_array_equal(array, before)


def test_uint8_rgb_array_is_never_shared() -> None:
    array = pattern()
    rgb = to_numpy_rgb(array)
    assert not np.shares_memory(rgb, array)
    rgb[:] = 0
    np.testing.assert_array_equal(array, pattern())
    image = load_image(array)
    array[:] = 0
    np.testing.assert_array_equal(np.array(image), pattern())


def test_non_contiguous_array() -> None:
    array = pattern(4, 6)[:, ::2]
    np.testing.assert_array_equal(to_numpy_rgb(array), array)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([[0.0, np.inf]]), "NaN or infinite"),
        (np.array([[-0.1, 0.5]]), r"\[-0.1, 0.5\].*\[0, 1\]"),
        (np.array([[0.0, 255.0]]), "divide by 255"),
        (np.array([[0, 300]], dtype=np.int32), "0..255"),
        (np.array([[-1, 3]], dtype=np.int16), "0..255"),
        (np.zeros((3, 8, 8), dtype=np.uint8), "channels-first"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"HxW, HxWx1, HxWx3 or HxWx4"),
        (np.zeros((1, 4, 4, 3), dtype=np.uint8), r"HxW, HxWx1"),
        (np.zeros((4,), dtype=np.uint8), r"HxW, HxWx1"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "zero width or height"),
        (np.zeros((2, 2), dtype=np.complex64), "dtype complex64"),
    ],
    ids=[
        "nan",
        "inf",
        "negative",
        "0-255-floats",
        "int-too-big",
        "int-negative",
        "chw",
        "two-channels",
        "4d",
        "1d",
        "empty",
        "complex",
    ],
)
def test_bad_arrays_raise_media_error(array: np.ndarray, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        load_image(array)
    with pytest.raises(MediaError):
        to_numpy_rgb(array)


def test_media_error_is_value_error_and_instit_error() -> None:
    with pytest.raises(ValueError):
        load_image(np.array([[np.nan]]))
    with pytest.raises(InstitError):
        load_image(np.array([[np.nan]]))


# -- files -----------------------------------------------------------------------------------


def test_file_paths_str_and_pathlike(tmp_path: Path) -> None:
    path = tmp_path / "pattern.png"
    Image.fromarray(pattern()).save(path)
    np.testing.assert_array_equal(pixels(load_image(path)), pattern())
    np.testing.assert_array_equal(pixels(load_image(str(path))), pattern())
    np.testing.assert_array_equal(to_numpy_rgb(path), pattern())
    assert image_size(path) == (6, 4)


def test_rgba_png_file(tmp_path: Path) -> None:
    path = tmp_path / "cutout.png"
    Image.fromarray(np.array([[[255, 255, 255, 0], [40, 80, 120, 255]]], dtype=np.uint8)).save(path)
    np.testing.assert_array_equal(pixels(load_image(path))[0], [[0, 0, 0], [40, 80, 120]])


def test_binary_file_object() -> None:
    buffer = io.BytesIO()
    Image.fromarray(pattern()).save(buffer, format="PNG")
    buffer.seek(0)
    np.testing.assert_array_equal(pixels(load_image(buffer)), pattern())
    assert not buffer.closed


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(MediaError, match=r"missing\.jpg.*does not exist"):
        load_image(path)
    with pytest.raises(MediaError, match=r"missing\.jpg"):
        image_size(str(path))


def test_directory_and_non_image_files(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="directory"):
        load_image(tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(MediaError, match=r"notes\.png.*not an image"):
        load_image(text)
    with pytest.raises(MediaError, match="not an image"):
        image_size(text)


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, format="PNG"
    )
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(MediaError, match=r"cut\.png"):
        load_image(path)


@pytest.mark.parametrize(
    ("orientation", "transpose"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_270),
        (8, Image.Transpose.ROTATE_90),
        (2, Image.Transpose.FLIP_LEFT_RIGHT),
    ],
)
def test_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, transpose: Image.Transpose
) -> None:
    source = Image.fromarray(pattern(4, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rotated{orientation}.png"
    source.save(path, exif=exif)
    loaded = load_image(path)
    expected = np.array(source.transpose(transpose))
    np.testing.assert_array_equal(pixels(loaded), expected)
    assert image_size(path) == loaded.size == (expected.shape[1], expected.shape[0])


def test_first_frame_of_animated_gif(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (3, 2), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    np.testing.assert_array_equal(pixels(load_image(path))[0, 0], (255, 0, 0))


# -- types and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"\x89PNG", 42, None, [[1, 2], [3, 4]]])
def test_unsupported_types_raise_type_error(value: object) -> None:
    with pytest.raises(InstitTypeError, match=r"PIL\.Image\.Image"):
        load_image(value)  # type: ignore[arg-type]
    with pytest.raises(InstitTypeError):
        image_size(value)  # type: ignore[arg-type]


def test_image_size_of_images_and_arrays() -> None:
    assert image_size(Image.new("L", (7, 5))) == (7, 5)
    assert image_size(np.zeros((5, 7, 3), dtype=np.uint8)) == (7, 5)
    assert image_size(np.zeros((5, 7), dtype=bool)) == (7, 5)
    with pytest.raises(MediaError, match="channels-first"):
        image_size(np.zeros((3, 5, 7)))


def test_zero_sized_pil_image() -> None:
    with pytest.raises(MediaError, match="zero width or height"):
        load_image(Image.new("RGB", (0, 3)))


def test_reference_demo_image(reference_dir: Path) -> None:
    path = reference_dir / "demo" / "image.jpg"
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == image_size(path) == (2250, 1500)


def test_import_is_light() -> None:
    code = (
        "import sys, instit.media; "
        "heavy = [m for m in ('cv2', 'torch', 'transformers', 'av') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


# -- hardening: decompression bombs, La, EXIF orientation of image objects ---------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` grey pixels (IHDR) and stops: a bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _is_bomb_error(exc: BaseException) -> None:
    text = str(exc)
    assert isinstance(exc, MediaError), type(exc)
    assert "900,000,000" in text.replace("900000000", "900,000,000")  # the size
    assert "PIL.Image.MAX_IMAGE_PIXELS" in text  # the setting that allows it


def test_decompression_bomb_is_a_media_error_from_every_entry_point(tmp_path: Path, capsys):
    from instit.bench import load_bench, make_tiny_bench
    from instit.cli import EXIT_USAGE, main
    from instit.marks import draw_marks
    from instit.video import load_video

    bomb = _png_header(30000, 30000)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    calls = {
        "load_image(path)": lambda: load_image(path),
        "load_image(file object)": lambda: load_image(io.BytesIO(bomb)),
        "image_size(path)": lambda: image_size(path),
        "to_numpy_rgb(path)": lambda: to_numpy_rgb(path),
        "draw_marks(path)": lambda: draw_marks(str(path), None),
    }
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.new("RGB", (8, 6)).save(folder / "000.png")
    (folder / "001.png").write_bytes(bomb)
    calls["load_video(folder)"] = lambda: load_video(folder, num_frames=None, progress=False)
    root = make_tiny_bench(tmp_path / "bench", num_questions=2, frames_per_video=2)
    (root / "image_open_ended" / "images" / "001-01.png").write_bytes(bomb)
    bench = load_bench("image_open_ended", root)
    calls["bench item"] = lambda: bench[0].load_media()
    for name, call in calls.items():
        with pytest.raises(MediaError) as info:
            call()
        _is_bomb_error(info.value)
        assert name  # which call failed shows in the traceback
    from instit.instances import Instances

    instances = tmp_path / "instances.json"
    instances.write_text(Instances.from_boxes([[1, 1, 5, 5]]).to_json())
    out = tmp_path / "marked.png"
    assert main(["mark", str(path), "--instances", str(instances), "-o", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "MAX_IMAGE_PIXELS" in err and "Traceback" not in err
    assert not out.exists()


def test_the_bomb_limit_follows_pillows_setting(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # limit: 2 * 50 pixels
    with pytest.raises(MediaError, match="limit of 100 pixels"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 200 pixels: allowed (with a warning)
    with pytest.warns(Image.DecompressionBombWarning):
        assert load_image(path).size == (20, 10)


def test_premultiplied_la_is_composited_like_la() -> None:
    premultiplied = Image.frombytes("La", (3, 1), bytes([200, 255, 0, 0, 45, 128]))
    assert premultiplied.mode == "La"
    out = pixels(load_image(premultiplied))
    # stored grey is already multiplied by alpha: composited over black it stays (+-1 rounding)
    np.testing.assert_array_equal(out[0], [[200] * 3, [0] * 3, [45] * 3])
    np.testing.assert_array_equal(out, pixels(load_image(premultiplied.convert("LA"))))


def _rotated_object(orientation: int, mode: str = "RGB") -> Image.Image:
    """A 40x20 image object whose EXIF tag says viewers show it rotated."""
    image = Image.new(mode, (40, 20), 90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return Image.open(buffer)


def test_size_mismatch_of_an_exif_rotated_image_object_names_the_tag() -> None:
    from instit.errors import InstancesError
    from instit.instances import Instances
    from instit.marks import draw_marks
    from instit.media import load_media
    from instit.tasks._media import prepare

    image = _rotated_object(6)
    made_for_view = Instances.from_boxes([[2, 2, 12, 30]], image_size=(20, 40))
    for call in (
        lambda: draw_marks(image, made_for_view),
        # the image loaded at the verbs' edge keeps its tag, so the note survives it
        lambda: prepare(load_media(image), made_for_view, marks="draw", style=None),
    ):
        with pytest.raises(InstancesError) as info:
            call()
        text = str(info.value)
        assert "EXIF orientation tag (6)" in text and "exif_transpose" in text
        assert "made for a 20x40 image but this image is 40x20" in text
    # the fix it names works
    from PIL import ImageOps

    assert draw_marks(ImageOps.exif_transpose(image), made_for_view).size == (20, 40)
    # no note for a tag that does not swap the sides, nor for a plain image
    for plain in (_rotated_object(3), Image.new("RGB", (40, 20))):
        with pytest.raises(InstancesError) as info:
            draw_marks(plain, made_for_view)
        assert "EXIF" not in str(info.value)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "I;16", "P"])
def test_a_rotated_object_of_any_mode_keeps_its_tag_through_the_verbs_edge(mode: str) -> None:
    """Regression: modes converted through arrays (alpha, 16-bit) lost the EXIF tag when loaded
    at the verbs' edge, so ask / describe_instances no longer explained the size mismatch."""
    from instit.errors import InstancesError
    from instit.instances import Instances
    from instit.media import load_media
    from instit.tasks import ask

    class Replier:
        def generate(self, media: list, prompts: list, **options: object) -> list[str]:
            return ["[1]"] * len(prompts)

    image = _rotated_object(6, mode)
    assert load_media(image).getexif().get(0x0112) == 6
    made_for_view = Instances.from_boxes([[2, 2, 12, 30]], image_size=(20, 40))
    with pytest.raises(InstancesError, match=r"EXIF orientation tag \(6\).*exif_transpose"):
        ask(Replier(), image, "What is [1]?", instances=made_for_view, progress=False)
    # the user's object is untouched, and a tag that does not swap the sides adds no note
    assert image.mode == mode and image.size == (40, 20)
    with pytest.raises(InstancesError) as info:
        ask(Replier(), _rotated_object(3, mode), "What is [1]?", instances=made_for_view)
    assert "EXIF" not in str(info.value)


def test_lazy_pil_objects_that_cannot_decode_and_unusable_paths_are_media_errors() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
    truncated = Image.open(io.BytesIO(buffer.getvalue()[:60]))  # header fine, pixels missing
    with pytest.raises(MediaError, match=r"PIL image cannot be decoded .*truncated"):
        load_image(truncated)
    closed = Image.open(io.BytesIO(buffer.getvalue()))
    closed.close()
    with pytest.raises(MediaError, match="closed"):
        load_image(closed)
    with pytest.raises(MediaError, match=r"cannot use .* as an image path"):
        load_image("a" * 5000 + ".png")


# -- channel order -------------------------------------------------------------------------


def test_bgr_arrays_are_reversed_once_into_rgb(tmp_path: Path) -> None:
    import cv2

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[1, 2] = 210, (1, 2, 3)
    path = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(path)
    bgr = cv2.imread(str(path))  # what OpenCV users hold
    assert np.array_equal(np.asarray(load_image(bgr, channels="bgr")), rgb)
    assert np.array_equal(to_numpy_rgb(bgr, channels="bgr"), rgb)
    assert np.array_equal(to_numpy_rgb(bgr), bgr)  # arrays are RGB by default
    bgra = np.dstack([bgr, np.full((4, 5), 255, np.uint8)])
    assert np.array_equal(to_numpy_rgb(bgra, channels="bgr"), rgb)
    gray = np.full((4, 5), 7, np.uint8)
    assert np.array_equal(to_numpy_rgb(gray, channels="bgr"), to_numpy_rgb(gray))
    assert bgr[0, 0, 2] == 210  # the caller's array is untouched


@pytest.mark.parametrize("source", ["file", "pil"])
def test_bgr_is_refused_for_what_is_already_rgb(source: str, tmp_path: Path) -> None:
    from instit.errors import InstitValueError

    image = Image.new("RGB", (3, 2))
    path = tmp_path / "a.png"
    image.save(path)
    value = path if source == "file" else image
    with pytest.raises(InstitValueError, match="always decoded as RGB; drop channels='bgr'"):
        load_image(value, channels="bgr")
    with pytest.raises(InstitValueError, match="not a channel order"):
        to_numpy_rgb(np.zeros((2, 2, 3), np.uint8), channels="rbg")  # type: ignore[arg-type]


# -- one media boundary: is_video / load_media ----------------------------------------------------


def test_one_rule_says_image_or_video(tmp_path: Path) -> None:
    from instit.media import is_video
    from instit.video import Video

    frames = [Image.new("RGB", (8, 6))] * 2
    (tmp_path / "frames").mkdir()
    videos = [
        Video(frames, indices=[0, 1], timestamps=[0.0, 1.0]),
        frames,
        tuple(frames),
        np.zeros((2, 6, 8, 3), np.uint8),
        tmp_path / "frames",
        *(f"clip{s}" for s in (".mp4", ".wmv", ".flv", ".ts", ".GIF", ".MKV")),
    ]
    images = [
        frames[0],
        np.zeros((6, 8, 3), np.uint8),
        *(f"photo{s}" for s in (".jpg", ".JPEG", ".png", ".webp", ".tiff")),
        io.BytesIO(b""),
    ]
    assert all(is_video(v) for v in videos)
    assert not any(is_video(i) for i in images)


def test_load_media_gives_an_image_or_a_video(tmp_path: Path) -> None:
    from instit.media import load_media
    from instit.video import Video
    from video_clips import write_clip

    Image.new("RGB", (8, 6), (200, 10, 10)).save(tmp_path / "p.png")
    clip = write_clip(tmp_path / "c.mp4", 12, rate=4)
    image = load_media(tmp_path / "p.png")
    assert isinstance(image, Image.Image) and image.getpixel((0, 0)) == (200, 10, 10)
    video = load_media(clip, num_frames=3)
    assert isinstance(video, Video) and video.indices == [0, 5, 11]
    assert load_media(video) is video
    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[..., 0] = 255  # blue in BGR
    assert load_media(bgr, channels="bgr").getpixel((0, 0)) == (0, 0, 255)
    with pytest.raises(InstitError, match=r"\['num_frames'\] apply to videos"):
        load_media(tmp_path / "p.png", num_frames=3)
