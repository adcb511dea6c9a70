"""Frame sampling speed: instit.load_video against sequential decoding, decord and torchcodec.

    .venv/bin/python benchmarks/video.py            # full run, ~10 min on 2 CPUs
    .venv/bin/python benchmarks/video.py --quick    # only the 60 s clips

Optional decoders are never project dependencies.  Install each into its own folder (``decord``
and ``decord2`` are both imported as ``decord``; ``--no-deps`` keeps the venv's torch) and name
the folders on the command line::

    .venv/bin/pip install --no-deps --target /tmp/bench-decord decord
    .venv/bin/pip install --no-deps --target /tmp/bench-decord2 decord2
    .venv/bin/pip install --no-deps --target /tmp/bench-torchcodec torchcodec
    .venv/bin/python benchmarks/video.py --decord /tmp/bench-decord --decord /tmp/bench-decord2 \\
        --torchcodec /tmp/bench-torchcodec

Without those options decord and torchcodec are imported from the environment if present; a
decoder that does not import is listed as "not available" with the reason (torchcodec's PyPI
wheel needs a CUDA build of torch and FFmpeg's shared libraries on the system).

The clips are written here with PyAV (1280x720 at 30 fps, H.264 ``ultrafast`` with B-frames and
a keyframe every 2 s, 60 s and 10 min; a 60 s VP9 WebM, whose header has no frame count) into a
cache folder that later runs reuse (writing them takes about 2 min).  Every frame carries its
number in its pixels, so the table also says whether each method returned the frames it was asked
for.

Each (clip, frame count, method) runs in its own subprocess: the time is the median over the
repeats of opening the file and getting ``k`` uniformly spaced frames
(``np.linspace(0, n - 1, k, dtype=int)``) as RGB pixels; memory is the peak resident set growth
(``VmHWM`` after resetting it, minus ``VmRSS`` before the first repeat), which also counts
FFmpeg's C allocations that tracemalloc cannot see.  The ``k`` decoded RGB frames themselves
(2.6 MiB each) are part of every method's peak.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT, RATE, GOP = 1280, 720, 30, 60
CODE_BITS = 15  # frame numbers up to 32767
BLOCK = 64  # px, side of one code block

CLIPS = {
    "h264-60s.mp4": (60, "libx264"),
    "vp9-60s.webm": (60, "libvpx-vp9"),
    "h264-10min.mp4": (600, "libx264"),
}
LONG_CLIP = "h264-10min.mp4"
ENCODER_OPTIONS = {
    "libx264": {
        "preset": "ultrafast",
        "bf": "2",  # ultrafast turns B-frames off; real footage has them
        "g": str(GOP),
        "keyint_min": str(GOP),
        "sc_threshold": "0",
        "crf": "23",
    },
    "libvpx-vp9": {
        "g": str(GOP),
        "deadline": "realtime",
        "cpu-used": "8",
        "row-mt": "1",
        "b:v": "2M",
    },
}
COUNTS = (8, 32)


# -- clips ---------------------------------------------------------------------------------------


def _code_rows() -> tuple[int, int]:
    return 40, 40 + BLOCK  # the row band holding the code blocks


def _y_plane(base: np.ndarray, k: int) -> np.ndarray:
    y = base.copy()
    top, bottom = _code_rows()
    for bit in range(CODE_BITS):
        x0 = 40 + bit * (BLOCK + 8)
        y[top:bottom, x0 : x0 + BLOCK] = 235 if k >> bit & 1 else 16
    x = (k * 6) % (WIDTH - 160)  # a moving box, so consecutive frames differ
    y[300:460, x : x + 160] = 200
    return y


def read_code(rgb: np.ndarray) -> int:
    """The frame number encoded in an ``HxWx3`` frame."""
    top, bottom = _code_rows()
    row = rgb[(top + bottom) // 2 - 8 : (top + bottom) // 2 + 8].mean(axis=2)
    value = 0
    for bit in range(CODE_BITS):
        x = 40 + bit * (BLOCK + 8) + BLOCK // 2
        if row[:, x - 8 : x + 8].mean() > 128:
            value |= 1 << bit
    return value


def write_clip(path: Path, seconds: int, codec: str) -> None:
    """Encode ``seconds`` of coded frames into ``path`` (written under a temporary name first)."""
    import av

    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = (60 + 80 * xx / WIDTH + 40 * yy / HEIGHT).astype(np.uint8)
    chroma = np.full((HEIGHT // 2, WIDTH), 128, np.uint8)  # U and V rows of yuv420p
    tmp = path.with_suffix(".part" + path.suffix)
    with av.open(str(tmp), "w", format=path.suffix.lstrip(".")) as container:
        stream = container.add_stream(codec, rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = ENCODER_OPTIONS[codec]
        stream.thread_type = "AUTO"
        for k in range(seconds * RATE):
            planes = np.concatenate([_y_plane(base, k), chroma])
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)


def ensure_clips(folder: Path, names: list[str]) -> dict[str, Path]:
    """Write the clips that are not cached in ``folder`` yet; return every clip's path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        path = folder / name
        if not path.exists():
            seconds, codec = CLIPS[name]
            print(f"writing {path} ({seconds} s, {codec}) ...", flush=True)
            started = time.perf_counter()
            write_clip(path, seconds, codec)
            print(f"  done in {time.perf_counter() - started:.0f} s", flush=True)
        paths[name] = path
    return paths


# -- methods (run inside the worker subprocess) ------------------------------------------------


def frame_count(path: str) -> int:
    """Frames in the first video stream (header count, else one demux pass)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for p in container.demux(stream) if p.size)


def run_instit(path: str, k: int, n: int) -> list[np.ndarray]:
    from instit.video import load_video

    return [np.asarray(frame) for frame in load_video(path, num_frames=k).frames]


def _decode_from_start(path: str, k: int, n: int, thread_type: str | None) -> list[np.ndarray]:
    """Decode every frame from the first one up to the last wanted one, keeping the wanted ones.

    This is the approach of ``read_video_pyav`` in the transformers documentation (no seeking,
    PyAV's default threading unless ``thread_type`` is given).
    """
    import av

    wanted = np.linspace(0, n - 1, k, dtype=int).tolist()
    remaining = set(wanted)
    kept: list[np.ndarray] = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        if thread_type is not None:
            stream.thread_type = thread_type
        for number, frame in enumerate(container.decode(stream)):
            if number in remaining:
                kept.append(frame.to_ndarray(format="rgb24"))
                remaining.discard(number)
                if not remaining:
                    break
    return kept


def run_sequential(path: str, k: int, n: int) -> list[np.ndarray]:
    return _decode_from_start(path, k, n, None)


def run_sequential_threaded(path: str, k: int, n: int) -> list[np.ndarray]:
    return _decode_from_start(path, k, n, "AUTO")


def run_decord(path: str, k: int, n: int) -> list[np.ndarray]:
    from decord import VideoReader, cpu

    reader = VideoReader(path, ctx=cpu(0), num_threads=0)
    indices = np.linspace(0, len(reader) - 1, k, dtype=int).tolist()
    return list(reader.get_batch(indices).asnumpy())


def run_torchcodec(path: str, k: int, n: int) -> list[np.ndarray]:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, seek_mode="exact", dimension_order="NHWC")
    indices = np.linspace(0, decoder.metadata.num_frames - 1, k, dtype=int).tolist()
    return list(decoder.get_frames_at(indices).data.numpy())


RUNNERS: dict[str, Callable[[str, int, int], list[np.ndarray]]] = {
    "instit": run_instit,
    "sequential": run_sequential,
    "sequential-threads": run_sequential_threaded,
    "decord": run_decord,
    "torchcodec": run_torchcodec,
}
ALTERNATIVES = ("sequential", "sequential-threads", "decord", "torchcodec")
OPTIONAL = {"decord": "decord", "torchcodec": "torchcodec"}  # method -> module


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _describe(method: str, site: str | None) -> tuple[str, str | None]:
    """The method's label (with the installed distribution) and why it cannot run, if it can't."""
    module = OPTIONAL.get(method)
    if module is None:
        return method, None
    if site is not None:
        sys.path.insert(0, site)
        names = [d.metadata["Name"] for d in importlib.metadata.distributions(path=[site])]
    else:
        names = importlib.metadata.packages_distributions().get(module, [])
    names = [n for n in names if n.lower().startswith(module)]
    label = f"{names[0]} {importlib.metadata.version(names[0])}" if names else method
    try:
        if method == "decord":
            import decord  # noqa: F401
        else:
            from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # a binary wheel fails with OSError / RuntimeError, not ImportError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return label, f"{type(exc).__name__}: {reason[-110:]}"
    return label, None


def worker(method: str, path: str, k: int, site: str | None, threads: str) -> None:
    """Time one run of ``method`` on ``path``; print one JSON line (runs in its own process).

    A first call for one frame (untimed) loads the libraries and the decoder, so the timed call
    measures the sampling alone.
    """
    label, reason = _describe(method, site)
    if reason is not None:
        print(json.dumps({"label": label, "unavailable": reason}))
        return
    if method == "instit" and threads:
        import instit.video._pyav as reader

        workers, thread_type = threads.split(",")
        reader._MAX_WORKERS = int(workers)
        reader._THREAD_TYPE = reader._PARALLEL_THREAD_TYPE = thread_type
        label = f"instit[{workers} dec, {thread_type}]"
    n = frame_count(path)
    wanted = np.linspace(0, n - 1, k, dtype=int).tolist()
    RUNNERS[method](path, 1, n)
    # reset the peak RSS so that imports and the warm-up do not count (Linux >= 4.0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    rss_before = _status_kb("VmRSS")
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    frames = RUNNERS[method](path, k, n)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime
    correct = sum(read_code(f) == w for f, w in zip(frames, wanted, strict=False))
    correct -= abs(len(frames) - len(wanted))
    peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
    print(
        json.dumps(
            {"label": label, "wall": wall, "cpu": cpu, "correct": correct, "peak_mb": peak_mb}
        )
    )


# -- driver ------------------------------------------------------------------------------------

# method, folder of an optional decoder, instit's "decoders,thread type" ("": its defaults)
Variant = tuple[str, str | None, str]


def measure(variant: Variant, path: Path, k: int) -> dict[str, Any]:
    """Run one worker subprocess and return its result."""
    method, site, threads = variant
    command = [sys.executable, __file__, "--worker", method, str(path), str(k), site or "", threads]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"label": method, "unavailable": f"crashed ({out.returncode}): {last[:110]}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_all(variants: list[Variant], path: Path, k: int, repeats: int) -> list[dict[str, Any]]:
    """Every variant ``repeats`` times, in turns (so that a busy moment hits them all alike)."""
    runs: list[list[dict[str, Any]]] = [[] for _ in variants]
    for _ in range(repeats):
        for variant, done in zip(variants, runs, strict=True):
            if done and "unavailable" in done[0]:
                continue
            done.append(measure(variant, path, k))
    results = []
    for done in runs:
        if "unavailable" in done[0]:
            results.append(done[0])
            continue
        results.append(
            {
                "label": done[0]["label"],
                "wall": statistics.median(r["wall"] for r in done),
                "cpu": statistics.median(r["cpu"] for r in done),
                "correct": min(r["correct"] for r in done),
                "peak_mb": max(r["peak_mb"] for r in done),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10 min clip")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "instit-video-bench",
        help="folder for the generated clips (reused between runs)",
    )
    parser.add_argument(
        "--decord",
        action="append",
        default=[],
        metavar="DIR",
        help="a folder holding decord or decord2 (pip install --target); repeatable",
    )
    parser.add_argument(
        "--torchcodec", action="append", default=[], metavar="DIR", help="a torchcodec folder"
    )
    parser.add_argument(
        "--instit-variants",
        action="store_true",
        help="also time instit with one decoder and each thread type, and with 2 decoders",
    )
    args = parser.parse_args()

    names = [n for n in CLIPS if not (args.quick and n == LONG_CLIP)]
    paths = ensure_clips(args.cache, names)
    variants: list[Variant] = [
        ("instit", None, ""),
        ("sequential", None, ""),
        ("sequential-threads", None, ""),
    ]
    variants += [("decord", site, "") for site in args.decord or [None]]
    variants += [("torchcodec", site, "") for site in args.torchcodec or [None]]
    if args.instit_variants:
        variants += [("instit", None, f"1,{t}") for t in ("NONE", "FRAME", "AUTO")]
        variants += [("instit", None, "2,NONE")]

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    header = (
        f"| {'clip':<14} | {'k':>2} | {'method':<22} | {'median s':>8} | {'vs instit':>9} | "
        f"{'CPU s':>6} | {'frames ok':>9} | {'peak MB':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    summary: list[str] = []
    instit_peaks: dict[tuple[str, int], float] = {}
    for name in names:
        for k in COUNTS:
            results = measure_all(variants, paths[name], k, args.repeats)
            base = results[0]["wall"]
            instit_peaks[name, k] = results[0]["peak_mb"]
            alternatives: dict[str, float] = {}
            for (method, _, _), result in zip(variants, results, strict=True):
                label = result["label"]
                if "unavailable" in result:
                    print(
                        f"| {name:<14} | {k:>2} | {label:<22} | not available: "
                        f"{result['unavailable']} | | | | |"
                    )
                    continue
                if method in ALTERNATIVES:
                    alternatives[label] = result["wall"]
                print(
                    f"| {name:<14} | {k:>2} | {label:<22} | {result['wall']:>8.3f} | "
                    f"{result['wall'] / base:>8.2f}x | {result['cpu']:>6.2f} | "
                    f"{result['correct']:>5}/{k:<3} | {result['peak_mb']:>7.1f} |"
                )
            fastest = min(alternatives, key=alternatives.__getitem__)
            summary.append(
                f"{name} k={k}: {alternatives['sequential'] / base:.1f}x faster than sequential; "
                f"fastest alternative {fastest} takes {alternatives[fastest] / base:.2f}x "
                "instit's time"
            )
    print()
    print("\n".join(summary))
    if LONG_CLIP in names:
        for k in COUNTS:
            print(
                f"instit peak memory, k={k}: {instit_peaks['h264-60s.mp4', k]:.1f} MB on 60 s, "
                f"{instit_peaks[LONG_CLIP, k]:.1f} MB on 10 min"
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        method, path, k, site, threads = sys.argv[2:7]
        worker(method, path, int(k), site or None, threads)
    else:
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        main()
