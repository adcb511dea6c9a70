"""Loading the bench from its on-disk layout, media loading, safe archive extraction."""

from __future__ import annotations

import json
import shutil
import stat
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from instit.bench import CONFIGS, load_bench, make_tiny_bench, safe_extract
from instit.bench.data import video_frame_files
from instit.bench.protocol import compose_prompt
from instit.bench.synthetic import frame_colour, image_colour
from instit.errors import DatasetError, InstitValueError, MediaError
from lock_holder import lock_held_elsewhere


@pytest.fixture
def bench_root(tmp_path):
    return make_tiny_bench(tmp_path / "bench", num_questions=6, frames_per_video=4)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_config_loads_with_fields_and_prompts(bench_root, config):
    bench = load_bench(config, bench_root)
    split, fmt = CONFIGS[config]
    assert (bench.config, bench.split, bench.fmt, len(bench)) == (config, split, fmt, 6)
    rows = [
        json.loads(line) for line in (bench_root / config / "test.jsonl").read_text().splitlines()
    ]
    for question, row in zip(bench, rows, strict=True):
        assert question.question_id == row["question_id"]
        assert question.answer == row["answer"]
        choices = tuple(row[f"choice_{c}"] for c in "abcd") if fmt == "mc" else None
        assert question.choices == choices
        assert question.prompt() == compose_prompt(split, fmt, row["question"], choices)


def test_image_media_is_the_pre_marked_rgb_image(bench_root):
    bench = load_bench("image_open_ended", bench_root)
    image = bench[2].load_media()
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == image_colour(1)


def test_video_media_is_every_frame_in_sorted_order(bench_root):
    bench = load_bench("video_multi_choice", bench_root)
    frames = bench[4].load_media()  # questions 4 and 5 share video 2
    assert [f.getpixel((0, 0)) for f in frames] == [frame_colour(2, t) for t in range(1, 5)]
    # extracted next to the archive (like the reference), once
    assert (bench_root / "videos_vpt" / "video_002").is_dir()


def test_frame_order_is_the_references_plain_string_sort(tmp_path):
    for name in ["10.png", "2.png", "1.png", ".hidden.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in video_frame_files(tmp_path)] == ["1.png", "10.png", "2.png"]


def test_parquet_layout_as_on_the_hub(tmp_path):
    root = make_tiny_bench(tmp_path / "hub", file_format="parquet", num_questions=4)
    assert (root / "image_multi_choice" / "test-00000-of-00001.parquet").is_file()
    image_bench = load_bench("image_multi_choice", root)
    assert image_bench[0].image_bytes is not None and image_bench[0].image_path is None
    assert image_bench[3].load_media().getpixel((0, 0)) == image_colour(1)
    video_bench = load_bench("video_open_ended", root)
    assert len(video_bench[0].load_media()) == 3


def test_videos_dir_elsewhere(bench_root, tmp_path):
    target = tmp_path / "frames"
    bench = load_bench("video_open_ended", bench_root, videos_dir=target)
    assert bench[0].video_dir == target / "videos_vpt" / "video_000"
    assert not (bench_root / "videos_vpt").exists()


def test_missing_field_names_file_row_and_field(bench_root):
    path = bench_root / "image_multi_choice" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    del rows[3]["choice_c"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DatasetError, match=r"row 3 \(question_id '002-02'\).*'choice_c'"):
        load_bench("image_multi_choice", bench_root)


def test_duplicate_ids_and_unknown_config_and_missing_folder(bench_root, tmp_path):
    path = bench_root / "image_open_ended" / "test.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(DatasetError, match="appears twice"):
        load_bench("image_open_ended", bench_root)
    with pytest.raises(DatasetError, match="unknown bench config"):
        load_bench("audio_open_ended", bench_root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no video_open_ended/ folder"):
        load_bench("video_open_ended", tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"bench folder .* does not exist: .* has no 'does'"):
        load_bench("video_open_ended", tmp_path / "does" / "not" / "exist")


def test_missing_archive_says_where_to_put_it(bench_root):
    (bench_root / "videos_vpt.zip").unlink()
    with pytest.raises(DatasetError, match=r"videos_vpt\.zip"):
        load_bench("video_open_ended", bench_root)


def test_damaged_image_is_a_media_error(bench_root):
    (bench_root / "image_open_ended" / "images" / "001-01.png").write_bytes(b"not a png")
    bench = load_bench("image_open_ended", bench_root)
    with pytest.raises(MediaError, match="001-01"):
        bench[0].load_media()


# -- safe extraction -----------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "evil", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt", "C:/x.txt"]
)
def test_zip_slip_is_refused_before_anything_is_written(tmp_path, evil):
    archive = _zip(tmp_path / "evil.zip", {"ok/frame.png": b"x", evil: b"boom"})
    target = tmp_path / "out" / "inner"
    with pytest.raises(DatasetError, match="unsafe member"):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "out" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_symlink_members_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("v/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="symlink"):
        safe_extract(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_failure_mid_extraction_leaves_no_partial_folder(tmp_path):
    archive = _zip(
        tmp_path / "bad.zip",
        {"videos/a/001.png": b"A" * 4000, "videos/b/001.png": b"B" * 4000},
    )
    data = bytearray(archive.read_bytes())
    offset = data.index(b"B" * 100)
    data[offset : offset + 10] = b"C" * 10  # corrupt the second member: CRC check fails
    archive.write_bytes(bytes(data))
    target = tmp_path / "out"
    with pytest.raises(DatasetError, match="nothing was left"):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []


def test_extraction_refuses_to_overwrite_and_rejects_non_zip(tmp_path):
    archive = _zip(tmp_path / "v.zip", {"videos/a/001.png": b"x"})
    assert safe_extract(archive, tmp_path / "out") == [tmp_path / "out" / "videos"]
    assert (tmp_path / "out" / "videos" / "a" / "001.png").read_bytes() == b"x"
    with pytest.raises(DatasetError, match="already exists"):
        safe_extract(archive, tmp_path / "out")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        safe_extract(tmp_path / "junk.zip", tmp_path / "out2")


# -- hub / datasets cache ------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(cache: Path, repo_id: str = "Inst-IT/Inst-It-Bench") -> Path:
    """The bench as ``huggingface_hub`` (and ``datasets``) cache a dataset repository."""
    storage = cache / ("datasets--" + repo_id.replace("/", "--"))
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(COMMIT)
    return make_tiny_bench(storage / "snapshots" / COMMIT, file_format="parquet", num_questions=4)


def test_loads_offline_from_the_hub_cache_without_writing_into_it(tmp_path, monkeypatch):
    snapshot = _hub_cache(tmp_path / "hub")
    before = sorted(p.relative_to(snapshot) for p in snapshot.rglob("*"))
    monkeypatch.setenv("INSTIT_CACHE", str(tmp_path / "instit-cache"))

    images = load_bench("image_multi_choice", cache_dir=tmp_path / "hub", offline=True)
    assert images.root == snapshot and len(images) == 4
    assert images[1].load_media().getpixel((0, 0)) == image_colour(0)

    videos = load_bench(
        "video_open_ended", "Inst-IT/Inst-It-Bench", cache_dir=tmp_path / "hub", offline=True
    )
    extracted = tmp_path / "instit-cache" / "inst-it-bench" / COMMIT / "videos_vpt"
    assert videos[3].video_dir == extracted / "video_001"
    assert [f.getpixel((0, 0)) for f in videos[3].load_media()] == [
        frame_colour(1, t) for t in (1, 2, 3)
    ]
    # the cache snapshot is left as it was: frames go to INSTIT_CACHE
    assert sorted(p.relative_to(snapshot) for p in snapshot.rglob("*")) == before
    # a second load reuses the extracted frames (the archive is not read again)
    (snapshot / "videos_vpt.zip").unlink()
    assert load_bench("video_open_ended", cache_dir=tmp_path / "hub", offline=True)[0].video_dir


def test_offline_without_a_cached_copy_says_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match=r"could not get the bench.*local copy"):
        load_bench("image_open_ended", cache_dir=tmp_path / "empty-cache", offline=True)


# -- hardening: media paths, bombs, damaged files ------------------------------------------------


def _edit_rows(path: Path, **changes) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1].update(changes)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("value", ["/etc/hostname", "../../outside.png", "images/../../../x.png"])
def test_image_paths_outside_the_bench_are_refused(bench_root, value):
    _edit_rows(bench_root / "image_open_ended" / "test.jsonl", image=value)
    with pytest.raises(DatasetError, match=r"row 1 .*absolute or climbs out of the bench"):
        load_bench("image_open_ended", bench_root)


@pytest.mark.parametrize("value", ["/tmp", "../..", "videos_vpt/../../secret", "C:/frames"])
def test_video_paths_outside_the_bench_are_refused(bench_root, value):
    _edit_rows(bench_root / "video_open_ended" / "test.jsonl", video_path=value)
    with pytest.raises(DatasetError, match=r"video_path .* climbs out of the bench"):
        load_bench("video_open_ended", bench_root)


def test_symlinked_media_leading_out_of_the_bench_are_refused(bench_root, tmp_path):
    outside = tmp_path / "private.png"
    Image.new("RGB", (4, 4)).save(outside)
    image = bench_root / "image_open_ended" / "images" / "001-02.png"
    image.unlink()
    image.symlink_to(outside)
    with pytest.raises(DatasetError, match="link leading out of"):
        load_bench("image_open_ended", bench_root)
    load_bench("video_open_ended", bench_root)  # extract the frames
    frames = bench_root / "videos_vpt" / "video_001"
    shutil.rmtree(frames)
    frames.symlink_to(tmp_path)
    with pytest.raises(DatasetError, match=r"video folder of question .* link leading out"):
        load_bench("video_open_ended", bench_root)


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("videos/a/001.png", b"x" * 2000)
        zf.writestr("videos/b/001.png", bytes(64 * 1024**2))  # 64 MiB of zeros: ~64 KiB
    assert archive.stat().st_size < 200_000
    target = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"'videos/b/001.png' inflates \d+x.*INSTIT_ZIP_MAX"):
        safe_extract(archive, target)
    assert list(target.iterdir()) == []
    with pytest.raises(DatasetError, match=r"over the 0.0 GiB limit.*max_bytes"):
        safe_extract(archive, target, max_bytes=1024**2)
    assert list(target.iterdir()) == []
    monkeypatch.setenv("INSTIT_ZIP_MAX_BYTES", "lots")
    with pytest.raises(DatasetError, match="INSTIT_ZIP_MAX_BYTES='lots'"):
        safe_extract(archive, target)
    monkeypatch.delenv("INSTIT_ZIP_MAX_BYTES")
    monkeypatch.setenv("INSTIT_ZIP_MAX_RATIO", "2000")  # the documented override
    assert safe_extract(archive, target) == [target / "videos"]
    assert (target / "videos" / "b" / "001.png").stat().st_size == 64 * 1024**2


def test_a_bomb_in_the_bench_archive_is_refused_by_load_bench(bench_root):
    archive = bench_root / "videos_vpt.zip"
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("videos_vpt/video_009/001.png", bytes(32 * 1024**2))
    with pytest.raises(DatasetError, match="inflates"):
        load_bench("video_open_ended", bench_root)
    assert not (bench_root / "videos_vpt").exists()


def test_non_utf8_and_corrupt_lines_name_file_and_line(bench_root):
    path = bench_root / "image_open_ended" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:2], b'{"question_id": "caf\xe9"}\n', *lines[2:]]))
    with pytest.raises(DatasetError, match=r"test\.jsonl: line 3 is not UTF-8"):
        load_bench("image_open_ended", bench_root)
    path.write_bytes(b"".join([*lines[:3], b'{"question_id": "003-01", "quest\n', *lines[3:]]))
    with pytest.raises(DatasetError, match=r"test\.jsonl: line 4 is not valid JSON"):
        load_bench("image_open_ended", bench_root)
    whole = bench_root / "image_multi_choice" / "test.jsonl"
    whole.unlink()
    (bench_root / "image_multi_choice" / "test.json").write_bytes(b"[\xff]")
    with pytest.raises(DatasetError, match=r"test\.json: line 1 is not UTF-8"):
        load_bench("image_multi_choice", bench_root)


def test_a_damaged_parquet_file_is_a_dataset_error(tmp_path):
    root = make_tiny_bench(tmp_path / "hub", file_format="parquet", num_questions=4)
    (root / "image_multi_choice" / "test-00000-of-00001.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DatasetError, match=r"test-00000-of-00001\.parquet is not a readable"):
        load_bench("image_multi_choice", root)


def test_videos_dir_that_is_a_file_is_a_dataset_error(bench_root, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DatasetError, match=r"videos_dir .*afile is a file"):
        load_bench("video_open_ended", bench_root, videos_dir=afile)
    assert afile.read_text() == "x"


def test_make_tiny_bench_never_writes_into_an_existing_bench(bench_root):
    archive = (bench_root / "videos_vpt.zip").read_bytes()
    with pytest.raises(InstitValueError, match="make_tiny_bench writes only into a new or empty"):
        make_tiny_bench(bench_root, num_questions=2)
    assert (bench_root / "videos_vpt.zip").read_bytes() == archive


def test_a_second_loader_waits_for_the_extraction_in_progress(bench_root):
    marker = bench_root / ".instit-extracted-videos_vpt.zip"
    loaded: list[int] = []
    with lock_held_elsewhere(marker):  # another process is extracting
        waiter = threading.Thread(
            target=lambda: loaded.append(len(load_bench("video_open_ended", bench_root)))
        )
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not (bench_root / "videos_vpt").exists()
    waiter.join(timeout=60)
    assert loaded == [6] and (bench_root / "videos_vpt" / "video_000").is_dir()
    assert not (bench_root / ".instit-extracted-videos_vpt.zip.instit-lock").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (7, r"question_ids mix strings and integers \(for example 7\)"),
        ({"id": 1}, r"question_id \{'id': 1\} is a dict, not a string or an integer"),
        (True, "is a bool, not a string"),
        (None, "lacks the field 'question_id'"),
    ],
)
def test_question_ids_of_mixed_or_unusable_types_are_refused(bench_root, value, message):
    _edit_rows(bench_root / "image_open_ended" / "test.jsonl", question_id=value)
    with pytest.raises(DatasetError, match=message):
        load_bench("image_open_ended", bench_root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"question_id": ' + b"1" * 5000 + b"}", "Exceeds the limit"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_huge_numbers_and_deep_nesting_name_file_and_line(bench_root, line, message):
    path = bench_root / "video_open_ended" / "test.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], line + b"\n", *lines[1:]]))
    with pytest.raises(DatasetError, match=rf"test\.jsonl: line 2 is not valid JSON .*{message}"):
        load_bench("video_open_ended", bench_root)
