"""Property suite over the input constructors: any input gives a result or an InstitError.

``Instances.from_*``, ``Tracks`` and ``load_image`` are fed generated values (hostile numbers,
wrong types, corrupt RLE strings, arbitrary JSON, random bytes, crafted image headers) and
must either return or raise an :class:`~instit.errors.InstitError`: never a raw numpy/PIL/
OpenCV/json exception, never ``MemoryError`` or ``OverflowError``.  Deterministic
(``derandomize``) and bounded: a fixed number of examples per property, seconds in total.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from instit.errors import InstitError
from instit.instances import Instances, Tracks
from instit.media import image_size, load_image

BOUNDED = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# numbers that broke or could break things: huge, tiny, signed, non-finite, wrong types
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.4e8, -1.4e8, 1e15, 1e300, 0.5, -0.0]),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
ids = st.one_of(
    st.none(), st.lists(st.one_of(st.integers(1, 9), numbers), max_size=4, unique_by=str)
)
# image sizes: small real ones, or absurd ones that must be refused without allocating
sizes = st.one_of(
    st.none(),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.tuples(st.sampled_from([0, -3, 2**31, 30000, 2**63]), st.integers(1, 40)),
    st.tuples(st.integers(1, 40), st.sampled_from([30000 * 30000, 2**40])),
    numbers,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def result_or_instit_error(call: Callable[[], Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GeometryWarning, DecompressionBombWarning: allowed
        with contextlib.suppress(InstitError):
            call()


boxes_strategy = st.lists(
    st.one_of(
        st.builds(
            lambda x, y, w, h: [x, y, x + w, y + h],
            st.integers(0, 30),
            st.integers(0, 30),
            st.integers(1, 9),
            st.integers(1, 9),
        ),
        st.lists(numbers, max_size=5),
    ),
    max_size=4,
)


@BOUNDED
@given(boxes=boxes_strategy, data=st.data(), size=sizes)
def test_from_boxes_and_points(boxes: list, data: st.DataObject, size: Any) -> None:
    matching = st.lists(
        st.one_of(st.integers(1, 9), st.sampled_from([2**63 - 1, 2**63, 2**64]), numbers),
        min_size=len(boxes),
        max_size=len(boxes),
    )
    id_list = data.draw(st.one_of(ids, matching))

    def build() -> None:  # what is accepted also converts (IDs fit supervision's int64)
        Instances.from_boxes(boxes, id_list, image_size=size).to_supervision()

    result_or_instit_error(build)
    points = [row[:2] for row in boxes]
    result_or_instit_error(lambda: Instances.from_points(points, id_list, image_size=size))
    result_or_instit_error(
        lambda: Instances.from_boxes(boxes, id_list, image_size=size, clip=False)
    )


polygon_points = st.lists(
    st.tuples(
        st.one_of(st.floats(-50, 90), st.sampled_from([1.4e8, -3e12, 1e15, 2e15, 1e300])),
        st.one_of(st.floats(-50, 90), st.sampled_from([1.4e8, -3e12, 1e15, 2e15, 1e300])),
    ),
    max_size=7,
)


@BOUNDED
@given(
    polygons=st.lists(
        st.one_of(polygon_points, st.lists(polygon_points, max_size=3), json_values), max_size=3
    ),
    ids=ids,
    size=sizes,
)
def test_from_polygons(polygons: list, ids: Any, size: Any) -> None:
    def build() -> None:
        instances = Instances.from_polygons(polygons, ids, image_size=size)
        masks = instances.masks()
        assert masks is not None and masks.shape[0] == len(instances)

    result_or_instit_error(build)


@BOUNDED
@given(
    shape=st.lists(st.integers(0, 5), max_size=4),
    dtype=st.sampled_from(["bool", "uint8", "int64", "float32", "float64", "complex64", "<U1"]),
    fill=st.sampled_from([0, 1, 2, 0.5, -1]),
    ids=ids,
    size=sizes,
)
def test_from_masks(shape: list, dtype: str, fill: float, ids: Any, size: Any) -> None:
    def build() -> None:
        array = np.zeros(shape, dtype=np.float64)
        array.flat[::2] = fill
        Instances.from_masks(array.astype(dtype), ids, image_size=size)

    result_or_instit_error(build)


rle_counts = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=130), max_size=40),
    st.binary(max_size=20),
    st.lists(numbers, max_size=6),
    st.sampled_from(["o" * 4000 + "0", "0" + "o" * 6 + "3" + "0", "1"]),
    json_values,
)


@BOUNDED
@given(
    rles=st.lists(
        st.fixed_dictionaries(
            {"size": st.one_of(st.lists(numbers, max_size=3), numbers), "counts": rle_counts}
        ),
        max_size=3,
    ),
    ids=ids,
    size=sizes,
)
def test_from_rle(rles: list, ids: Any, size: Any) -> None:
    result_or_instit_error(lambda: Instances.from_rle(rles, ids, image_size=size))
    result_or_instit_error(lambda: Instances.coerce(rles, image_size=size))


def _valid_dicts() -> list[dict[str, Any]]:
    boxes = Instances.from_boxes([[1, 2, 5, 6], [0, 0, 3, 3]], [4, 9], image_size=(8, 8))
    masks = Instances.from_boxes([[1, 2, 5, 6]], image_size=(8, 8)).masks()
    polygon = Instances.from_polygons([[[1, 1], [6, 1], [3, 6]]], image_size=(8, 8))
    point = Instances.from_points([[2, 3]], image_size=(8, 8))
    instances = [boxes, polygon, point]
    if masks is not None:
        instances.append(Instances.from_masks(np.ones((1, 8, 8), dtype=bool)))
    return [i.to_dict() for i in instances]


VALID = _valid_dicts()


def _mutate(data: Any, path: list[Any], value: Any) -> Any:
    """``data`` with the item at ``path`` (indices into the nested containers) replaced."""
    if not path or not isinstance(data, (dict, list)) or not data:
        return value
    if isinstance(data, dict):
        key = list(data)[path[0] % len(data)]
        return {**data, key: _mutate(data[key], path[1:], value)}
    index = path[0] % len(data)
    return [*data[:index], _mutate(data[index], path[1:], value), *data[index + 1 :]]


@BOUNDED
@given(
    base=st.sampled_from(VALID),
    path=st.lists(st.integers(0, 10), max_size=5),
    value=json_values,
    text=st.one_of(st.text(max_size=30), st.binary(max_size=30)),
)
def test_from_dict_and_from_json(base: dict, path: list, value: Any, text: Any) -> None:
    mutated = _mutate(base, path, value)
    result_or_instit_error(lambda: Instances.from_dict(mutated))
    result_or_instit_error(lambda: Instances.from_json(json.dumps(mutated)))
    result_or_instit_error(lambda: Instances.from_json(text))
    result_or_instit_error(lambda: Instances.coerce(mutated))
    tracks = {"format": "instit.tracks", "frames": {"0": mutated, "3": base}}
    result_or_instit_error(lambda: Tracks.from_json(json.dumps(tracks)))
    result_or_instit_error(lambda: Tracks.from_json(text))


@BOUNDED
@given(
    frames=st.dictionaries(
        numbers,
        st.one_of(st.none(), st.sampled_from(VALID), json_values),
        max_size=3,
    ),
    as_list=st.lists(st.one_of(st.none(), st.sampled_from(VALID), json_values), max_size=3),
    size=sizes,
    frame=numbers,
)
def test_tracks(frames: dict, as_list: list, size: Any, frame: Any) -> None:
    def build() -> None:
        tracks = Tracks(frames, image_size=size)
        tracks.at(frame)

    result_or_instit_error(build)
    result_or_instit_error(lambda: Tracks.from_list(as_list, image_size=size))
    result_or_instit_error(lambda: Tracks.coerce(frames))
    result_or_instit_error(lambda: Tracks.coerce(as_list))


def _png(width: int, height: int, mode_byte: int, depth: int, body: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        payload = kind + data
        return struct.pack(">I", len(data)) + payload + struct.pack(">I", zlib.crc32(payload))

    header = struct.pack(">IIBBBBB", width, height, depth, mode_byte, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(body))
        + chunk(b"IEND", b"")
    )


files = st.one_of(
    st.binary(max_size=64),
    st.builds(
        _png,
        st.sampled_from([0, 1, 3, 30000, 2**31 - 1]),
        st.sampled_from([0, 1, 2, 30000]),
        st.sampled_from([0, 2, 3, 4, 6, 7]),
        st.sampled_from([1, 8, 16, 5]),
        st.binary(max_size=40),
    ),
)


def _array(shape: list[int], dtype: str, value: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or -1 cast to integers on purpose
        return np.full(shape, value).astype(dtype)


arrays = st.builds(
    _array,
    st.lists(st.integers(0, 5), max_size=4),
    st.sampled_from(["uint8", "uint16", "int32", "float32", "bool", "int8", "complex64", "<U1"]),
    st.sampled_from([0, 1, 255, 256, -1, 0.5, 2.0, float("nan")]),
)
MODES = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"]
MODES += ["I", "F", "I;16", "I;16B", "I;16L", "RGBX"]
pil_images = st.builds(
    lambda mode, size, seed: Image.frombytes(
        mode,
        size,
        np.random.default_rng(seed).integers(0, 256, 16 * size[0] * size[1], np.uint8).tobytes(),
    ),
    st.sampled_from(MODES),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.integers(0, 9),
)


def _load_and_size(image: Any) -> None:
    def load() -> None:
        result = load_image(image)
        assert result.mode == "RGB"

    result_or_instit_error(load)
    if isinstance(image, io.BytesIO):
        image.seek(0)
    result_or_instit_error(lambda: image_size(image))


@BOUNDED
@given(data=files)
def test_load_image_files(data: bytes) -> None:
    _load_and_size(io.BytesIO(data))


@BOUNDED
@given(image=st.one_of(arrays, numbers, st.text(max_size=10)))
def test_load_image_arrays_and_wrong_types(image: Any) -> None:
    _load_and_size(image)


@BOUNDED
@given(image=pil_images)
def test_load_image_pil_modes(image: Image.Image) -> None:
    _load_and_size(image)
