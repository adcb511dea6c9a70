"""Tiny test videos whose pixels say which frame they are, written with PyAV.

Frame ``k`` shows the binary digits of ``k`` as a 3x3 grid of black/white blocks (bit 0 top
left, row by row), big enough to survive H.264 / VP9 / MJPEG compression at any quality.
:func:`frame_code` reads the number back from a decoded RGB image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT = 160, 120
GRID = 3  # 3x3 blocks: frame numbers 0..511
BITS = GRID * GRID


def coded_frame(k: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """An ``HxWx3`` uint8 image whose block pattern encodes ``k``."""
    if not 0 <= k < 2**BITS:
        raise ValueError(f"frame number {k} does not fit in {BITS} bits")
    image = np.zeros((height, width, 3), np.uint8)
    for bit in range(BITS):
        if k >> bit & 1:
            row, col = divmod(bit, GRID)
            y0, y1 = row * height // GRID, (row + 1) * height // GRID
            x0, x1 = col * width // GRID, (col + 1) * width // GRID
            image[y0:y1, x0:x1] = 255
    return image


def frame_code(image: Image.Image | np.ndarray) -> int:
    """The frame number encoded in ``image`` (read at the centre of each block)."""
    pixels = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if pixels.ndim == 3:
        pixels = pixels.mean(axis=2)
    height, width = pixels.shape
    value = 0
    for bit in range(BITS):
        row, col = divmod(bit, GRID)
        y = (2 * row + 1) * height // (2 * GRID)
        x = (2 * col + 1) * width // (2 * GRID)
        patch = pixels[y - 3 : y + 4, x - 3 : x + 4]
        if patch.mean() > 127:
            value |= 1 << bit
    return value


def write_clip(
    path: Path,
    n: int,
    *,
    codec: str = "libx264",
    rate: int = 24,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
    rotation: float | None = None,
    container_options: dict[str, str] | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Write ``n`` coded frames to ``path``; return ``path``.

    ``pts`` (with ``time_base``) sets every frame's presentation time yourself, for variable
    frame rates; otherwise frame ``k`` is at ``k / rate`` seconds.  ``rotation`` stores a display
    matrix rotating the picture counter-clockwise by that many degrees.  ``pix_fmt`` is the
    encoder's pixel format (default 4:2:0, 8 bits).
    """
    pix_fmt = pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = WIDTH, HEIGHT
        stream.pix_fmt = pix_fmt
        stream.options = dict(options or {})
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(coded_frame(k), format="rgb24")
            if pts is not None:
                frame.pts = pts[k]
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def presentation_times(path: Path) -> list[float]:
    """Every frame's presentation time in seconds from the first, by decoding the whole file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(frame.pts for frame in container.decode(stream))
        tb = stream.time_base
    return [float((p - pts[0]) * tb) for p in pts]


def decoded_codes(path: Path) -> list[int]:
    """The code of every frame in the order the decoder outputs them (presentation order)."""
    with av.open(str(path)) as container:
        return [frame_code(f.to_image()) for f in container.decode(video=0)]


def remux(source: Path, path: Path, edit: Callable[[list[av.Packet]], list[av.Packet]]) -> Path:
    """Copy ``source``'s video packets into ``path`` after ``edit`` (given them all in decode
    order, without the end-of-stream packet, and returning the packets to write); return
    ``path``."""
    with av.open(str(source)) as reader, av.open(str(path), "w") as writer:
        stream = reader.streams.video[0]
        out = writer.add_stream_from_template(stream)
        for packet in edit([p for p in reader.demux(stream) if p.size]):
            packet.stream = out
            writer.mux(packet)
    return path


def restamp(source: Path, path: Path, times: Callable[[list[av.Packet]], list[int]]) -> Path:
    """Copy ``source``'s video packets into ``path`` with the presentation times
    ``times(packets)`` (one per packet, in decode order), as a broken muxer might; return
    ``path``."""

    def edit(packets: list[av.Packet]) -> list[av.Packet]:
        new_times = times(packets)
        # muxers refuse a packet shown before it is decoded: move every decode time back alike
        lead = max(0, *(p.dts - pts for p, pts in zip(packets, new_times, strict=True)))
        for packet, pts in zip(packets, new_times, strict=True):
            packet.pts, packet.dts = pts, packet.dts - lead
        return packets

    return remux(source, path, edit)


def decode_times(packets: list[av.Packet]) -> list[int]:
    """Each packet's decode time: with B-frames, not the frames' presentation order."""
    return [p.dts for p in packets]


def swap_times(first: int, second: int) -> Callable[[list[av.Packet]], list[int]]:
    """The packets' own times with those of packets ``first`` and ``second`` exchanged."""

    def times(packets: list[av.Packet]) -> list[int]:
        result = [p.pts for p in packets]
        result[first], result[second] = result[second], result[first]
        return result

    return times


def zero_packet(source: Path, path: Path, number: int) -> Path:
    """Copy ``source``'s video packets into ``path`` with the payload of packet ``number``
    (decode order) zeroed after its first four bytes: a packet damaged in a way the container
    cannot notice.  Return ``path``."""

    def edit(packets: list[av.Packet]) -> list[av.Packet]:
        packet = packets[number]
        data = bytes(packet)
        damaged = av.Packet(data[:4] + bytes(len(data) - 4))
        damaged.pts, damaged.dts = packet.pts, packet.dts
        damaged.time_base, damaged.is_keyframe = packet.time_base, packet.is_keyframe
        packets[number] = damaged
        return packets

    return remux(source, path, edit)
