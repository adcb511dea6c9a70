"""load_video / Video: the right frames, exactly, from every kind of source.

Every test video is written here with PyAV; frame ``k`` carries ``k`` in its pixels (see
``video_clips.py``), so each returned frame is checked against the index load_video claims.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from instit.errors import InstitTypeError, InstitValueError, MediaError, VideoError
from instit.video import Video, load_video, select_frames, uniform_positions
from video_clips import (
    HEIGHT,
    WIDTH,
    coded_frame,
    decode_times,
    decoded_codes,
    frame_code,
    presentation_times,
    restamp,
    swap_times,
    write_clip,
    zero_packet,
)

N = 72  # frames in the constant-rate clips (3 s at 24 fps)
# variable frame rate: 60 frames 20..89 ms apart
_rng = np.random.default_rng(7)
VFR_PTS = np.concatenate([[0], np.cumsum(_rng.integers(20, 90, 59))]).tolist()

_OPEN_GOP = "open-gop=1:keyint=12:min-keyint=12:scenecut=0"
CLIPS = {
    # H.264 with B-frames (presentation order != decode order) and a keyframe every 10 frames
    "h264.mp4": dict(n=N, options={"g": "10", "bf": "3"}),
    "vp9.webm": dict(
        n=N, codec="libvpx-vp9", options={"g": "10", "deadline": "realtime", "cpu-used": "8"}
    ),
    "h264.mkv": dict(n=N, options={"g": "10"}),
    "mjpeg.avi": dict(n=N, codec="mjpeg"),
    "h264.mov": dict(n=N, options={"g": "10"}),
    # MPEG-TS: no frame count in the header, timestamps start at 1.4 s rather than 0
    "h264.ts": dict(n=N, options={"g": "10", "bf": "2"}),
    "vfr.mp4": dict(n=60, pts=VFR_PTS, time_base=Fraction(1, 1000), options={"g": "8"}),
    "vfr.mkv": dict(n=60, pts=VFR_PTS, time_base=Fraction(1, 1000), options={"g": "8"}),
    # AVI stores decode-order times only, wrong for H.264 with B-frames
    "h264-bframes.avi": dict(n=N, options={"g": "10", "bf": "3"}),
    # an elementary H.264 stream: no container timestamps to index
    "raw.h264": dict(n=30),
    # open GOPs: the B-frames before each keyframe (in presentation order) refer to the frames
    # before it, so a seek to that keyframe cannot give them; in TS the seek lands there
    "open-gop.ts": dict(n=N, options={"bf": "3", "x264-params": _OPEN_GOP}),
    "open-gop.mkv": dict(n=N, options={"bf": "3", "x264-params": _OPEN_GOP}),
    # HEVC with B-frames (phone cameras), AV1 (web video)
    "hevc.mp4": dict(
        n=N,
        codec="libx265",
        options={"x265-params": "keyint=10:min-keyint=10:bframes=3:log-level=none"},
    ),
    "av1.webm": dict(
        n=N,
        codec="libsvtav1",
        options={"g": "10", "preset": "8", "svtav1-params": "enable-tf=0:enable-overlays=0"},
    ),
    # 10-bit 4:2:0 HEVC (HDR phone video), 8-bit 4:4:4 H.264
    "hevc-10bit.mkv": dict(
        n=N,
        codec="libx265",
        pix_fmt="yuv420p10le",
        options={"x265-params": "keyint=10:min-keyint=10:log-level=none"},
    ),
    "h264-444.mkv": dict(n=N, pix_fmt="yuv444p", options={"g": "10"}),
    # MPEG-2 in an MPEG program stream (DVD, .mpg/.vob): its packets do not start with the frames
    # they carry, so the frames come out with other times than their packets had
    "mpeg2.mpg": dict(n=N, codec="mpeg2video", options={"g": "10", "bf": "2"}),
    # MPEG-4 Part 2 with B-frames in AVI (DivX/Xvid-style files)
    "mpeg4-bframes.avi": dict(n=N, codec="mpeg4", options={"g": "10", "bf": "2"}),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {name: write_clip(folder / name, **spec) for name, spec in CLIPS.items()}


def codes(video: Video) -> list[int]:
    return [frame_code(frame) for frame in video.frames]


def linspace_rule(n: int, k: int) -> list[int]:
    return np.linspace(0, n - 1, k, dtype=int).tolist()


# -- exactness per container -----------------------------------------------------------------


def test_encoders_of_the_test_clips_exist():
    assert {"libx264", "libvpx-vp9", "libx265", "libsvtav1", "mpeg2video", "mpeg4", "mjpeg"} <= (
        av.codecs_available
    )


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_every_frame_is_the_claimed_one(clips, name):
    n = CLIPS[name]["n"]
    assert decoded_codes(clips[name]) == list(range(n))  # the clip itself is right
    video = load_video(clips[name], num_frames=None)
    assert video.num_source_frames == n
    assert video.indices == list(range(n))
    assert codes(video) == list(range(n))


@pytest.mark.parametrize("name", sorted(CLIPS))
@pytest.mark.parametrize("k", [1, 2, 8, 13, 32])
def test_uniform_sampling_returns_the_right_frames(clips, name, k):
    n = CLIPS[name]["n"]
    video = load_video(clips[name], num_frames=k)
    assert video.indices == list(dict.fromkeys(linspace_rule(n, k)))
    assert codes(video) == video.indices
    assert len(video) == min(n, k)
    assert all(frame.mode == "RGB" and frame.size == (WIDTH, HEIGHT) for frame in video)


@pytest.mark.parametrize(
    "name", ["h264.mp4", "vp9.webm", "h264.mkv", "mjpeg.avi", "h264.mov", "h264.ts"]
)
def test_timestamps_are_the_presentation_times(clips, name):
    truth = presentation_times(clips[name])
    video = load_video(clips[name], num_frames=None)
    assert video.timestamps == pytest.approx(truth, abs=1e-9)
    assert video.fps == pytest.approx(24.0)
    assert video.duration == pytest.approx(N / 24, abs=2e-3)


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_variable_frame_rate_uses_the_real_times(clips, name):
    video = load_video(clips[name], num_frames=None)
    assert video.timestamps == pytest.approx([p / 1000 for p in VFR_PTS], abs=1e-9)
    # 1 fps over a VFR clip: the frame on screen at 0 s, 1 s, 2 s ...
    by_time = load_video(clips[name], fps=1)
    times = np.array(VFR_PTS) / 1000
    expected = [int(np.searchsorted(times, s, side="right")) - 1 for s in range(int(times[-1]) + 1)]
    assert by_time.indices == expected
    assert codes(by_time) == expected


@pytest.mark.parametrize("name", ["vp9.webm", "h264.mkv", "h264.ts", "raw.h264"])
def test_frame_count_missing_from_header_still_works(clips, name):
    with av.open(str(clips[name])) as container:
        assert container.streams.video[0].frames == 0  # these containers store no frame count
    n = CLIPS[name]["n"]
    video = load_video(clips[name], num_frames=3)
    assert video.num_source_frames == n
    assert video.indices == [0, (n - 1) // 2, n - 1]
    assert codes(video) == video.indices


def test_frames_close_together_and_far_apart_in_one_call(clips):
    # fps sampling above the keyframe interval decodes forward; the window jumps seek
    video = load_video(clips["h264.mp4"], fps=12, start=0.5, end=2.0)
    assert video.indices == list(range(12, 48, 2))
    assert codes(video) == video.indices


# -- rotation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "degrees"), [(".mp4", 90), (".mkv", 90), (".mov", 180), (".mp4", 270)]
)
def test_display_rotation_is_applied(tmp_path, suffix, degrees):
    path = write_clip(tmp_path / f"rotated{suffix}", 12, rotation=degrees)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).rotation % 360 == degrees
    video = load_video(path, num_frames=None)
    # portrait after a quarter turn
    assert video.size == ((HEIGHT, WIDTH) if degrees % 180 else (WIDTH, HEIGHT))
    for index, frame in zip(video.indices, video.frames, strict=True):
        upright = np.asarray(frame.rotate(-degrees, expand=True))  # undo the CCW turn
        assert frame_code(upright) == index
    assert codes(video) != video.indices  # the turn changed the pixels: it was applied


# -- sampling rules --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 9, 31, 100, 1001])
@pytest.mark.parametrize("k", [1, 2, 3, 8, 16, 32])
def test_uniform_rule_is_llava_next_linspace(n, k):
    positions = uniform_positions(n, k, duplicates=True)
    assert positions == linspace_rule(n, k)  # LLaVA-NeXT's rule, repeats included
    unique = uniform_positions(n, k)
    assert unique == sorted(set(positions))
    if n >= k:
        assert unique == positions  # no repeats to drop when the clip is long enough
    assert positions[0] == 0
    if k >= 2:
        assert positions[-1] == n - 1  # first and last frame always included


def test_linspace_truncates_rather_than_rounds():
    # 0, 2.33, 4.67, 7 -> truncation gives 4 where rounding would give 5
    assert uniform_positions(8, 4) == [0, 2, 4, 7]


def test_short_clip_gives_fewer_frames_without_duplicates(tmp_path):
    path = write_clip(tmp_path / "short.mp4", 5)
    video = load_video(path, num_frames=8)
    assert video.indices == [0, 1, 2, 3, 4]
    assert codes(video) == [0, 1, 2, 3, 4]
    repeated = load_video(path, num_frames=8, duplicates=True)
    assert repeated.indices == linspace_rule(5, 8) == [0, 0, 1, 1, 2, 2, 3, 4]
    assert codes(repeated) == repeated.indices


def test_fps_sampling_picks_every_nth_frame(clips):
    video = load_video(clips["h264.mp4"], fps=2)
    assert video.indices == list(range(0, N, 12))
    assert codes(video) == video.indices
    assert video.timestamps == pytest.approx([i / 2 for i in range(6)])


def test_fps_above_the_video_rate_takes_each_frame_once(clips):
    assert load_video(clips["h264.mkv"], fps=100, end=0.5).indices == list(range(12))


def test_max_frames_thins_fps_sampling_uniformly(clips):
    video = load_video(clips["h264.mp4"], fps=8, max_frames=4)  # 24 samples -> 4
    every = list(range(0, N, 3))
    assert video.indices == [every[p] for p in linspace_rule(len(every), 4)]
    assert codes(video) == video.indices


def test_time_window_is_half_open(clips):
    video = load_video(clips["h264.mp4"], num_frames=None, start=1.0, end=2.0)
    assert video.indices == list(range(24, 48))  # 1.0 s is frame 24; 2.0 s (frame 48) is out
    assert codes(video) == video.indices
    sampled = load_video(clips["h264.mp4"], num_frames=4, start=1.0, end=2.0)
    assert sampled.indices == [24 + p for p in linspace_rule(24, 4)]


def test_select_frames_on_plain_timestamps():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert select_frames(times, num_frames=3) == [0, 2, 5]
    assert select_frames(times, fps=1) == [0, 2, 4]
    # on screen at 1.4 and 2.4 s: frames 2 and 4; at 0.4 s frame 0, but the window starts at 0.5
    assert select_frames(times, fps=1, start=0.4) == [1, 2, 4]
    assert select_frames(times, fps=4, start=2.0) == [4, 5]  # 2.0, 2.25 | 2.5, 2.75 (to 3.0)
    assert select_frames(times, fps=4, start=2.0, duplicates=True) == [4, 4, 5, 5]
    assert select_frames(times, num_frames=None, end=1.0) == [0, 1]


# -- <t> and seconds ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["h264.mp4", "vfr.mkv"])
def test_frame_numbers_and_seconds_round_trip(clips, name):
    video = load_video(clips[name], num_frames=8)
    for t in range(1, len(video) + 1):
        assert video.time_of(t) == video.timestamps[t - 1]
        assert video.frame_at(video.time_of(t)) == t
    gaps = np.diff(video.timestamps)
    # a time a third of the way to the next sampled frame belongs to the earlier one
    for t in range(1, len(video)):
        assert video.frame_at(video.time_of(t) + gaps[t - 1] / 3) == t
        assert video.frame_at(video.time_of(t) + 2 * gaps[t - 1] / 3) == t + 1
    assert video.frame_at(-5.0) == 1
    assert video.frame_at(1e6) == len(video)


def test_time_of_rejects_frames_that_do_not_exist(clips):
    video = load_video(clips["h264.mp4"], num_frames=4)
    for bad in (0, 5, -1):
        with pytest.raises(InstitValueError, match=r"<1> to <4>"):
            video.time_of(bad)
    with pytest.raises(InstitTypeError):
        video.time_of(1.0)  # type: ignore[arg-type]


# -- folders and in-memory frames --------------------------------------------------------------


def _write_frames(folder: Path, names: list[str], codes_: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, k in zip(names, codes_, strict=True):
        Image.fromarray(coded_frame(k)).save(folder / name, quality=95)


def test_folder_loads_in_natural_order_and_skips_other_files(tmp_path):
    folder = tmp_path / "frames"
    _write_frames(folder, [f"frame_{i}.jpg" for i in range(1, 13)], list(range(1, 13)))
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.jpg").write_bytes((folder / "frame_3.jpg").read_bytes())
    (folder / "sub.png").mkdir()
    before = sorted(os.listdir(folder))
    video = load_video(folder, num_frames=None)
    assert codes(video) == list(range(1, 13))  # frame_2 before frame_10
    assert video.indices == list(range(12))
    assert video.source == str(folder) and video.num_source_frames == 12
    assert video.fps is None and video.duration is None
    assert load_video(folder).indices == linspace_rule(12, 8)
    assert sorted(os.listdir(folder)) == before


def test_folder_pattern_and_source_fps(tmp_path):
    folder = tmp_path / "mixed"
    _write_frames(folder, [f"a_{i}.png" for i in range(6)], list(range(6)))
    _write_frames(folder, [f"b_{i}.png" for i in range(6)], list(range(100, 106)))
    video = load_video(folder, pattern="b_*.png", num_frames=None, source_fps=2)
    assert codes(video) == list(range(100, 106))
    assert video.timestamps == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert video.fps == 2.0 and video.duration == 3.0
    assert load_video(folder, pattern="b_*.png", fps=1, source_fps=2).indices == [0, 2, 4]


def test_reference_demo_frames(reference_dir):
    demo = reference_dir / "demo"
    video = load_video(demo, pattern="frame_*.jpg")
    assert len(video) == 8 and video.indices == list(range(8))
    assert video.size == (1280, 720)
    for i, frame in enumerate(video.frames, start=1):
        expected = np.asarray(Image.open(demo / f"frame_{i}.jpg").convert("RGB"))
        assert np.array_equal(np.asarray(frame), expected)
    marked = load_video(demo, pattern="som_frame_*.jpg")
    assert len(marked) == 8 and not np.array_equal(
        np.asarray(marked.frames[0]), np.asarray(video.frames[0])
    )


def test_reference_demo_folder_without_pattern_explains_the_size_clash(reference_dir):
    with pytest.raises(VideoError, match=r"differ in size.*pattern="):
        load_video(reference_dir / "demo")


def test_list_of_images_arrays_and_paths(tmp_path):
    path = tmp_path / "f2.png"
    Image.fromarray(coded_frame(2)).save(path)
    pil = Image.fromarray(coded_frame(0))
    array = coded_frame(1)
    array_before = array.copy()
    items = [pil, array, str(path), path]
    video = load_video(items, num_frames=None)
    assert codes(video) == [0, 1, 2, 2]
    assert video.source is None
    assert items == [pil, array, str(path), path] and np.array_equal(array, array_before)
    assert video.frames[0] is not pil  # a copy, never the caller's image


def test_thwc_array_and_torch_tensor():
    stack = np.stack([coded_frame(k) for k in range(10)])
    before = stack.copy()
    video = load_video(stack, num_frames=4, source_fps=5)
    assert codes(video) == linspace_rule(10, 4)
    assert video.timestamps == [i / 5 for i in video.indices]
    assert np.array_equal(stack, before)
    import torch

    tensor = torch.from_numpy(stack)
    assert codes(load_video(tensor, num_frames=3)) == [0, 4, 9]


# -- bad input ---------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        load_video(tmp_path / "nope.mp4")


@pytest.mark.parametrize("url", ["https://example.com/clip.mp4", "s3://bucket/clip.mp4"])
def test_urls_are_refused_without_network_access(url):
    with pytest.raises(VideoError, match=r"is a URL; .* download the video first"):
        load_video(url)


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("hello, I am not a video\n" * 20)
    with pytest.raises(VideoError, match="not a video FFmpeg can read"):
        load_video(path)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_single_picture_track_before_the_video_is_not_taken_for_it(tmp_path, suffix):
    # a cover image stored as a one-frame MJPEG track ahead of the video (MP4 keeps it flagged
    # as cover art, Matroska as a plain track): the video is the stream FFmpeg would pick
    path = tmp_path / f"cover{suffix}"
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), "rgb24")
        for frame in (picture, None):
            for packet in cover.encode(frame):
                container.mux(packet)
        for k in [*range(24), None]:
            frame = None if k is None else av.VideoFrame.from_ndarray(coded_frame(k), "rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
    loaded = load_video(path, num_frames=4)
    assert loaded.num_source_frames == 24 and loaded.size == (WIDTH, HEIGHT)
    assert codes(loaded) == loaded.indices == linspace_rule(24, 4)


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoError, match=r"no video stream \(its streams: audio\)"):
        load_video(path)


def test_mp4_cut_in_half(clips, tmp_path):
    data = clips["h264.mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: gone
    with pytest.raises(VideoError, match=r"truncated|corrupt"):
        load_video(cut)


def test_faststart_mp4_cut_in_half(tmp_path):
    whole = write_clip(
        tmp_path / "fast.mp4", N, options={"g": "10"}, container_options={"movflags": "faststart"}
    )
    data = whole.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # the index comes first
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated"):
        load_video(cut)


@pytest.mark.parametrize("name", ["vp9.webm", "h264.mkv"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_matroska_cut_short_is_truncated(clips, tmp_path, name, fraction):
    # Matroska has no frame count; its header's duration gives the cut away
    data = clips[name].read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(VideoError, match=r"truncated or corrupt: its header declares 3.000 s"):
        load_video(cut)


def test_mjpeg_avi_cut_short_is_truncated(clips, tmp_path):
    data = clips["mjpeg.avi"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    with pytest.raises(VideoError, match=rf"header declares {N} frames but only \d+ are"):
        load_video(cut)


def test_transport_stream_with_damaged_packets(clips, tmp_path):
    data = bytearray(clips["h264.ts"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)  # ten TS packets lost
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"is corrupt: the demuxer flagged \d+ of its"):
        load_video(damaged)


def test_a_frame_that_fails_to_decode(clips, tmp_path):
    damaged = zero_packet(clips["h264.mkv"], tmp_path / "damaged.mkv", 13)
    with pytest.raises(VideoError, match=r"decoding frame \d+ of .* failed .* the file is corrupt"):
        load_video(damaged, num_frames=None)
    # frames whose keyframe interval holds no damaged packet still load
    video = load_video(damaged, start=2.0)  # frames 48..71
    assert codes(video) == video.indices == [48 + i for i in linspace_rule(N - 48, 8)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_video_with_zero_frames(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(VideoError, match=r"no video stream|no frames|before any video data"):
        load_video(path)


def test_empty_folder_and_folder_without_images(tmp_path):
    with pytest.raises(VideoError, match="has no images"):
        load_video(tmp_path)
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(VideoError, match="has no images"):
        load_video(tmp_path)
    _write_frames(tmp_path, ["f_1.png"], [1])
    with pytest.raises(VideoError, match="matching 'g_\\*'"):
        load_video(tmp_path, pattern="g_*")


def test_mixed_sizes_are_refused(tmp_path):
    folder = tmp_path / "sizes"
    _write_frames(folder, [f"f_{i}.png" for i in range(4)], list(range(4)))
    Image.fromarray(coded_frame(4, 80, 60)).save(folder / "f_4.png")
    with pytest.raises(VideoError, match=r"'f_0.png' is 160x120 but 'f_4.png' is 80x60"):
        load_video(folder)
    with pytest.raises(VideoError, match="frame 0 is 160x120 but frame 1 is 80x60"):
        load_video([coded_frame(0), coded_frame(1, 80, 60)])


def test_empty_sequences():
    with pytest.raises(VideoError, match="empty"):
        load_video([])
    with pytest.raises(VideoError, match="empty"):
        load_video(np.zeros((0, 8, 8, 3), np.uint8))


def test_bad_arrays_and_types(tmp_path):
    with pytest.raises(MediaError, match="THWC"):
        load_video(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InstitTypeError, match="cannot read a int"):
        load_video(42)
    still = tmp_path / "still.jpg"
    Image.fromarray(coded_frame(0)).save(still)
    with pytest.raises(VideoError, match="single image"):
        load_video(still)


def test_bad_arguments(clips, tmp_path):
    path = clips["h264.mp4"]
    with pytest.raises(InstitValueError, match=r"either num_frames .* or fps"):
        load_video(path, num_frames=4, fps=1)
    with pytest.raises(InstitValueError, match="num_frames must be >= 1"):
        load_video(path, num_frames=0)
    with pytest.raises(InstitTypeError, match="num_frames must be an int"):
        load_video(path, num_frames=2.5)
    with pytest.raises(InstitValueError, match="fps must be > 0"):
        load_video(path, fps=0)
    with pytest.raises(InstitValueError, match="fps must be a finite number of frames per second"):
        load_video(path, fps=float("nan"))
    with pytest.raises(InstitValueError, match="start must be a finite number of seconds >= 0"):
        load_video(path, start=-1)
    with pytest.raises(InstitValueError, match=r"window .* is empty"):
        load_video(path, start=2, end=1)
    with pytest.raises(VideoError, match="contains no frame"):
        load_video(path, start=10)
    with pytest.raises(InstitValueError, match="source_fps= is for image sequences"):
        load_video(path, source_fps=5)
    with pytest.raises(InstitValueError, match="pattern= applies to folders"):
        load_video(path, pattern="*.jpg")
    with pytest.raises(VideoError, match="pass source_fps="):
        load_video([coded_frame(0), coded_frame(1)], fps=1)


def test_bad_arguments_of_frame_sequences_and_videos(clips):
    frames = [coded_frame(0), coded_frame(1)]
    for bad in (0, -2.0, float("nan"), float("inf")):
        with pytest.raises(InstitValueError, match="source_fps must be a finite number > 0"):
            load_video(frames, source_fps=bad)
    with pytest.raises(InstitTypeError, match="source_fps must be a number, got str"):
        load_video(frames, source_fps="24")
    with pytest.raises(InstitTypeError, match="pattern must be a glob string, got int"):
        load_video(clips["h264.mp4"].parent, pattern=5)
    video = load_video(frames, source_fps=2)
    with pytest.raises(InstitTypeError, match="seconds must be a number, got str"):
        video.frame_at("0.5")
    with pytest.raises(InstitValueError, match="seconds must be finite"):
        video.frame_at(float("nan"))
    assert repr(video) == (
        f"Video(2 frames {WIDTH}x{HEIGHT}, indices=[0, 1], fps=2.0, source=None)"
    )


def test_explicit_default_count_with_fps_is_refused(clips):
    with pytest.raises(InstitValueError, match="not both"):
        load_video(clips["h264.mp4"], num_frames=8, fps=1)


def test_video_dataclass_validates():
    with pytest.raises(VideoError, match="at least one frame"):
        Video(frames=[], indices=[], timestamps=[])
    with pytest.raises(VideoError, match="one index and one timestamp per frame"):
        Video(frames=[Image.new("RGB", (4, 4))], indices=[0, 1], timestamps=[0.0])
    with pytest.raises(InstitTypeError, match="not a PIL image"):
        Video(frames=[np.zeros((4, 4, 3), np.uint8)], indices=[0], timestamps=[0.0])
    frame = [Image.new("RGB", (4, 4))]
    for indices, timestamps in [(["x"], [0.0]), ([None], [0.0]), ([0], ["soon"])]:
        with pytest.raises(InstitTypeError, match="integer indices and timestamps"):
            Video(frames=frame, indices=indices, timestamps=timestamps)
    with pytest.raises(InstitTypeError, match="integer indices"):
        Video(frames=None, indices=[0], timestamps=[0.0])  # type: ignore[arg-type]
    with pytest.raises(VideoError, match="finite seconds"):
        Video(frames=frame, indices=[0], timestamps=[float("nan")])


# -- serialisation and display ---------------------------------------------------------------


def test_to_dict_is_json_metadata(clips):
    video = load_video(clips["h264.mp4"], num_frames=3)
    data = json.loads(video.to_json())
    assert data == {
        "source": str(clips["h264.mp4"]),
        "num_frames": 3,
        "indices": [0, 35, 71],
        "timestamps": pytest.approx([0.0, 35 / 24, 71 / 24]),
        "fps": 24.0,
        "duration": pytest.approx(3.0),
        "num_source_frames": N,
        "names": None,  # a video file's frames have no file names
        "width": WIDTH,
        "height": HEIGHT,
    }


def test_notebook_views(clips):
    video = load_video(clips["h264.mp4"], num_frames=5)
    page = video._repr_html_()
    images = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 5
    thumb = Image.open(io.BytesIO(base64.b64decode(images[2])))
    assert frame_code(thumb.resize((WIDTH, HEIGHT))) == video.indices[2]
    for t in range(1, 6):
        assert f"&lt;{t}&gt; {video.time_of(t):.2f}s" in page
    sheet = Image.open(io.BytesIO(video._repr_png_()))
    assert sheet.format == "PNG" and sheet.size[0] == 4 * 192 and sheet.size[1] > 2 * 144


# -- marks -------------------------------------------------------------------------------------


def test_with_marks_picks_tracks_by_source_frame(clips):
    from instit.instances import Instances, Tracks
    from instit.marks import instance_color

    video = load_video(clips["h264.mp4"], num_frames=4)  # source frames 0, 23, 47, 71
    box = Instances.from_boxes([[20, 20, 100, 90]], ids=[3], image_size=(WIDTH, HEIGHT))
    tracks = Tracks({23: box, 71: box, 30: box})
    marked = video.with_marks(tracks)
    changed = [
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(video.frames, marked.frames, strict=True)
    ]
    assert changed == [False, True, False, True]
    assert marked.indices == video.indices and marked.timestamps == video.timestamps
    colour = np.array(instance_color(3))
    for frame in (marked.frames[1], marked.frames[3]):  # the same ID has the same colour
        near = np.abs(np.asarray(frame).astype(int) - colour).max(axis=2) <= 8
        assert near.sum() > 50
    by_position = video.with_marks(Tracks({0: box}), indexed_by="sample")
    assert not np.array_equal(np.asarray(by_position.frames[0]), np.asarray(video.frames[0]))
    with pytest.raises(InstitValueError, match="indexed_by"):
        video.with_marks(tracks, indexed_by="time")  # type: ignore[arg-type]


# -- decoding plan -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "vfr.mkv", "h264.ts", "open-gop.ts"])
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_any_number_of_decoders_gives_the_same_frames(clips, monkeypatch, name, workers):
    from instit.video import _pyav

    monkeypatch.setattr(_pyav, "worker_count", lambda: workers)
    n = CLIPS[name]["n"]
    video = load_video(clips[name], num_frames=13)
    assert video.indices == linspace_rule(n, 13)
    assert codes(video) == video.indices
    assert video.timestamps == pytest.approx(
        [presentation_times(clips[name])[i] for i in video.indices]
    )


def test_plan_keeps_frames_between_keyframes_on_one_decoder():
    from instit.video._pyav import StreamIndex, plan

    index = StreamIndex(
        pts=list(range(100)),
        keyframes=list(range(0, 100, 10)),
        time_base=Fraction(1, 10),
        last_duration=1,
        average_rate=Fraction(10),
        exact=True,
    )
    positions = [0, 5, 9, 10, 33, 50, 51, 52, 99]
    # one run per keyframe interval; the most frames from the run's keyframe first
    assert plan(index, positions) == [[0, 5, 9], [99], [33], [50, 51, 52], [10]]
    runs = plan(index, list(range(0, 100, 3)))
    assert sorted(p for r in runs for p in r) == list(range(0, 100, 3)) and len(runs) == 10
    assert plan(index, [1, 2, 3]) == [[1, 2, 3]]  # one run: one decoder


@pytest.mark.parametrize("suffix", [".mkv", ".ts"])
def test_decode_times_stamped_as_presentation_times(clips, tmp_path, suffix):
    # a broken muxer's file: the B-frames' times are out of order, so the frames are numbered in
    # the order the decoder outputs them (what every player shows), not by their times
    path = restamp(clips["h264.mp4"], tmp_path / f"restamped{suffix}", decode_times)
    assert decoded_codes(path) == list(range(N))
    assert codes(load_video(path, num_frames=None)) == list(range(N))
    video = load_video(path, num_frames=13)
    assert codes(video) == video.indices == linspace_rule(N, 13)
    assert video.timestamps == pytest.approx([i / 24 for i in video.indices])


@pytest.mark.parametrize("k", [None, 8, 13])
def test_exchanged_times_in_a_stream_without_b_frames_are_seen_in_the_index(tmp_path, k):
    # frames shown in decode order whose times go back once: numbered by decoding order
    source = write_clip(tmp_path / "ip.mp4", N, options={"g": "10", "bf": "0"})
    path = restamp(source, tmp_path / "swapped.mkv", swap_times(20, 21))
    assert decoded_codes(path) == list(range(N))
    video = load_video(path, num_frames=k)
    assert codes(video) == video.indices == (list(range(N)) if k is None else linspace_rule(N, k))
    assert video.timestamps == pytest.approx([i / 24 for i in video.indices])


@pytest.mark.parametrize("k", [None, 8])
def test_exchanged_times_among_b_frames_are_caught_while_decoding(clips, tmp_path, k):
    # the packets' times still go back and forth as B-frames' do, so only decoding shows that
    # a wanted frame comes out with another time than its packet's: then the frames are counted
    # and numbered in output order
    path = restamp(clips["h264.mp4"], tmp_path / "swapped.mkv", swap_times(20, 21))
    assert decoded_codes(path) == list(range(N))
    video = load_video(path, num_frames=k)
    assert codes(video) == video.indices == (list(range(N)) if k is None else linspace_rule(N, k))
    assert video.timestamps == pytest.approx([i / 24 for i in video.indices])


@pytest.mark.parametrize("name", ["h264.mp4", "h264.mkv", "h264.mov", "h264.ts", "vfr.mkv"])
def test_b_frame_files_with_proper_times_are_indexed_for_seeking(clips, name):
    from instit.video import _pyav

    with _pyav.open_container(str(clips[name])) as container:
        stream = _pyav.video_stream(container, name)
        assert stream.codec_context.has_b_frames
        assert _pyav.scan(container, stream, name).exact


def test_mpeg_program_stream_is_counted_by_decoding(clips):
    # its packets are cut from PES packets and carry other frames' times (here two packets
    # share a time): the frames are counted and numbered in the decoder's output order
    with av.open(str(clips["mpeg2.mpg"])) as container:
        times = {p.pts for p in container.demux(video=0) if p.size}
    assert len(times) < N  # the file really has the problem
    video = load_video(clips["mpeg2.mpg"], num_frames=None)
    assert video.num_source_frames == N and codes(video) == list(range(N))
    assert video.timestamps == pytest.approx([i / 24 for i in range(N)])


def test_avi_with_b_frames_is_numbered_in_presentation_order(clips):
    video = load_video(clips["h264-bframes.avi"], num_frames=None)
    assert video.timestamps == pytest.approx([i / 24 for i in range(N)])
    assert video.fps == pytest.approx(24.0) and video.duration == pytest.approx(3.0)


def test_progress_bar_with_several_decoders(clips, monkeypatch, capsys):
    from instit.video import _pyav

    monkeypatch.setattr(_pyav, "worker_count", lambda: 4)
    video = load_video(clips["h264.mp4"], num_frames=8, progress=True)
    assert codes(video) == video.indices == linspace_rule(N, 8)
    assert "decoding frames" in capsys.readouterr().err


# -- hardening: requests far beyond the stream are checked before anything is allocated --------


def test_huge_requests_are_checked_against_the_stream_first(tmp_path: Path) -> None:
    import tracemalloc

    from instit.video.sampling import MAX_SAMPLES

    clip = write_clip(tmp_path / "clip.mp4", 12)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(5):
        Image.new("RGB", (8, 6), (index * 40, 0, 0)).save(folder / f"{index:03}.png")
    tracemalloc.start()
    try:
        every = load_video(clip, num_frames=10**9, progress=False)
        assert every.indices == list(range(12))  # more than the clip has: every frame once
        assert load_video(folder, num_frames=10**9, progress=False).indices == list(range(5))
        with pytest.raises(InstitValueError, match=r"fps=1e\+09 asks for .* 12 frames"):
            load_video(clip, fps=1e9, max_frames=8, progress=False)
        with pytest.raises(InstitValueError, match="fps=1e\\+09"):
            load_video(folder, fps=1e9, source_fps=5, progress=False)
        with pytest.raises(InstitValueError, match="duplicates=True would list"):
            load_video(clip, num_frames=10**9, duplicates=True, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000
    # the bounds leave real requests alone: a high rate on a short window, many repeats
    times = [i / 30 for i in range(30)]
    assert select_frames(times, fps=4000) == list(range(30))
    assert len(select_frames(times, num_frames=MAX_SAMPLES, duplicates=True)) == MAX_SAMPLES


def test_uniform_positions_shortcut_equals_the_linspace_rule() -> None:
    for n in range(1, 40):
        for k in (n, n + 1, 2 * n + 3, 10 * n, 1000):
            expected = list(dict.fromkeys(np.linspace(0, n - 1, k, dtype=int).tolist()))
            assert uniform_positions(n, k) == expected == list(range(n))


def test_load_video_reads_bgr_frames_when_told(tmp_path: Path) -> None:
    rgb = np.zeros((3, 6, 8, 3), np.uint8)
    rgb[..., 0] = np.arange(3)[:, None, None] * 50 + 10
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    for source in (bgr, list(bgr)):
        video = load_video(source, num_frames=None, channels="bgr")
        assert all(np.array_equal(np.asarray(f), r) for f, r in zip(video.frames, rgb, strict=True))
    Image.fromarray(rgb[0]).save(tmp_path / "f_0.png")
    for source in (tmp_path, [tmp_path / "f_0.png"]):
        with pytest.raises(InstitValueError, match="channels='bgr' describes numpy arrays"):
            load_video(source, channels="bgr")


def test_with_marks_warns_or_snaps_tracks_of_frames_not_sampled() -> None:
    from instit import UnsampledFramesWarning
    from instit.instances import Instances, Tracks

    frames = [Image.new("RGB", (20, 20), (v, v, v)) for v in (0, 60, 120)]
    video = Video(frames, indices=[0, 10, 20], timestamps=[0.0, 1.0, 2.0])
    tracks = Tracks({4: Instances.from_boxes([[2, 2, 12, 12]], [1])})
    with pytest.warns(UnsampledFramesWarning, match="0 of 3 sampled frames show instances"):
        plain = video.with_marks(tracks)

    def changed(marked: Video) -> list[bool]:
        pairs = zip(marked.frames, frames, strict=True)
        return [not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs]

    assert changed(plain) == [False, False, False]
    snapped = video.with_marks(tracks, snap=True)  # frame 4 is nearest to sampled frame 0
    assert changed(snapped) == [True, False, False]
