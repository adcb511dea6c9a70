"""One media boundary: the public verbs load what the user gave once, with
``instit.media.load_media``; the layers below take only loaded media (``LoadedMedia``) and refuse
anything else with a typed error that names ``instit.load_media``.

Each verb is called with a path, a folder, a video file and arrays, and must give what it gives
for the same media loaded first; the internal functions are given unloaded media and must refuse
it.  The model is a real tiny checkpoint (random weights), the media real files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import instit
from instit.errors import InstitTypeError, InstitValueError, MediaError
from instit.media import check_loaded, load_media
from instit.model import InstIt
from instit.testing import make_tiny_checkpoint
from instit.video import Video, load_video
from model_checkpoints import image
from video_clips import write_clip

QUESTION = "What is [1] doing at <2>?"
FIX = "load it first with instit.load_media"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> InstIt:
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("boundary") / "qwen")
    return InstIt.from_pretrained(folder, device="cpu", progress=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A photo, a folder of three frames, the same frames as a list of paths, a video file."""
    root = tmp_path_factory.mktemp("media")
    image(200, 150, seed=7).save(root / "photo.png")
    folder = root / "frames"
    folder.mkdir()
    for i in range(3):
        image(120, 90, seed=10 + i).save(folder / f"img_{i}.png")
    return {
        "photo": root / "photo.png",
        "folder": folder,
        "list": [str(folder / f"img_{i}.png") for i in range(3)],
        "clip": write_clip(root / "clip.mp4", 12, rate=4),
    }


def _same_inputs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- load_media: the edge ----------------------------------------------------------------------


def test_load_media_keeps_in_memory_frames_whole_and_names_image_files(files) -> None:
    frames = [image(40, 30, seed=s) for s in range(10)]
    loaded = load_media(frames)
    assert isinstance(loaded, list) and len(loaded) == 10  # every frame, not 8 sampled
    assert all(a.tobytes() == b.tobytes() for a, b in zip(loaded, frames, strict=True))
    assert loaded[0] is not frames[0]  # new images: the caller's are never touched
    array = np.stack([np.asarray(f) for f in frames])
    assert [f.tobytes() for f in load_media(array)] == [f.tobytes() for f in loaded]
    bgr = load_media(np.ascontiguousarray(array[..., ::-1]), channels="bgr")
    assert [f.tobytes() for f in bgr] == [f.tobytes() for f in loaded]
    sampled = load_media(frames, num_frames=3)  # sampling asked for: a Video
    assert isinstance(sampled, Video) and sampled.indices == [0, 4, 9]
    # image files in a list are read as a folder of them would be: every file, with its name
    named = load_media(files["list"])
    assert isinstance(named, Video) and named.names == ["img_0.png", "img_1.png", "img_2.png"]
    assert named.indices == load_media(files["folder"], num_frames=None).indices == [0, 1, 2]


def test_load_media_refuses_what_it_cannot_load() -> None:
    video = Video([image(40, 30)] * 2, indices=[0, 5], timestamps=[0.0, 0.5])
    with pytest.raises(InstitTypeError, match="media is None"):
        load_media(None)
    with pytest.raises(MediaError, match="no frames"):
        load_media([])
    with pytest.raises(MediaError, match="no frames"):
        load_media(np.zeros((0, 6, 8, 3), np.uint8))
    with pytest.raises(InstitValueError, match=r"\['num_frames'\] apply when a video is read"):
        load_media(video, num_frames=2)
    with pytest.raises(InstitValueError, match="channels='bgr' describes numpy arrays"):
        load_media(video, channels="bgr")
    with pytest.raises(InstitValueError, match="channels='bgr' describes numpy arrays"):
        load_media([image(40, 30)], channels="bgr")  # PIL frames are RGB already


def test_check_loaded_names_what_it_got_and_the_fix(files) -> None:
    picture = image(40, 30)
    video = Video([picture], indices=[0], timestamps=[0.0])
    for loaded in (picture, video, [picture, picture]):
        assert check_loaded(loaded, "here") is loaded
    refused = {
        "the path": str(files["photo"]),
        "the path '[^']*frames'": files["folder"],
        "ndarray": np.zeros((6, 8, 3), np.uint8),
        "a list of str": files["list"],
        "an empty list": [],
        "a list of Image, ndarray": [picture, np.zeros((6, 8, 3), np.uint8)],
        "tuple": (picture,),
    }
    for what, media in refused.items():
        with pytest.raises(InstitTypeError, match=rf"here takes loaded media.*{what}.*{FIX}"):
            check_loaded(media, "here")


# -- the model: public methods load, private ones refuse -----------------------------------------


def test_model_public_methods_load_once_and_equal_the_preloaded_call(model, files) -> None:
    photo, folder, clip = files["photo"], files["folder"], files["clip"]
    sources: list[Any] = [
        photo,  # an image file
        str(folder),  # a folder of frames
        clip,  # a video file: 8 frames sampled
        files["list"],  # image files as a list
        np.asarray(Image.open(photo)),  # an HxWx3 array
        np.stack([np.asarray(f) for f in load_video(folder, num_frames=None)]),  # TxHxWxC
    ]
    for source in sources:
        loaded = load_media(source)
        assert _same_inputs(model.prepare(source, QUESTION), model.prepare(loaded, QUESTION))
        direct, preloaded = model.encode_media(source), model.encode_media(loaded)
        assert torch.equal(direct.features, preloaded.features)
        assert direct.modality == ("image" if isinstance(loaded, Image.Image) else "video")
        [text] = model.generate([source], [QUESTION], max_new_tokens=3)
        assert text == model.generate([loaded], [QUESTION], max_new_tokens=3)[0]
        assert "".join(model.stream(source, QUESTION, max_new_tokens=3)) == text
    # prepare_ids: the training path's public entry, with the ids it builds
    from instit.prompting.templates import IMAGE_TOKEN_INDEX

    ids = [1, 2, IMAGE_TOKEN_INDEX, 3]
    assert _same_inputs(model.prepare_ids(clip, ids), model.prepare_ids(load_media(clip), ids))


def test_generate_loads_an_object_given_twice_once_and_shares_its_prefix(model, files) -> None:
    photo = str(files["photo"])  # one str object, asked about twice
    questions = [QUESTION, "Where is [2]?"]
    shared = model.generate([photo, photo], questions, max_new_tokens=3)
    loaded = load_media(photo)
    assert shared == model.generate([loaded, loaded], questions, max_new_tokens=3)
    one_by_one = [model.generate([photo], [q], max_new_tokens=3)[0] for q in questions]
    assert shared == one_by_one


def test_generate_loads_media_batch_by_batch_not_all_at_once(model) -> None:
    """Regression: generate loaded every media item before the first batch and held them all
    until the last answer, so a long list of files needed the memory of all of them; now a
    batch's media are loaded for that batch (as before the boundary) and let go once encoded."""
    import gc

    size = (83, 59)  # no other image in the test session has it
    arrays = [np.full((size[1], size[0], 3), 30 * n, np.uint8) for n in range(4)]  # not PIL
    alive: list[int] = []

    def count(module: Any, args: Any, kwargs: Any) -> None:
        gc.collect()
        alive.append(sum(isinstance(o, Image.Image) and o.size == size for o in gc.get_objects()))

    hook = model.module.register_forward_pre_hook(count, with_kwargs=True)
    try:
        texts = model.generate(arrays, [QUESTION] * 4, max_new_tokens=2, batch_size=2)
    finally:
        hook.remove()
    assert len(alive) == 4 and max(alive) == 0  # 2 batches x 2 steps; pixels gone once encoded
    assert texts == [model.generate([a], [QUESTION], max_new_tokens=2)[0] for a in arrays]


def test_model_private_methods_refuse_unloaded_media(model, files) -> None:
    from instit.prompting.templates import IMAGE_TOKEN_INDEX

    path = str(files["photo"])
    array = np.zeros((30, 40, 3), np.uint8)
    calls = {
        "_encode": lambda media: model._encode(media),
        "_encoded": lambda media: model._encoded(media),
        "_prepare_ids": lambda media: model._prepare_ids(media, [1, IMAGE_TOKEN_INDEX]),
        "_batch_inputs": lambda media: model._batch_inputs([media], [QUESTION], 3),
        "_content": lambda media: model._content(media),
    }
    for name, call in calls.items():
        for media in (path, files["folder"], array, files["list"]):
            with pytest.raises(InstitTypeError, match=f"InstIt's private methods.*{FIX}"):
                call(media)
        assert call(load_media(path)) is not None, name


# -- the tasks: the verbs load, prepare refuses ------------------------------------------------


def test_task_verbs_give_the_preloaded_result_for_paths_folders_and_arrays(model, files) -> None:
    photo, folder = files["photo"], files["folder"]
    boxes = instit.Instances.from_boxes({1: [10, 10, 90, 80], 2: [100, 40, 190, 140]})
    opts: dict[str, Any] = {"max_new_tokens": 3, "progress": False}
    for source, instances in (
        (photo, boxes),
        (folder, None),
        (np.asarray(Image.open(photo)), None),
    ):
        loaded = load_media(source)
        direct = model.ask(source, QUESTION, instances=instances, **opts)
        preloaded = model.ask(loaded, QUESTION, instances=instances, **opts)
        assert direct.text == preloaded.text and direct.seconds == preloaded.seconds
        assert direct.unknown_ids == preloaded.unknown_ids
        many = instit.tasks.ask_many(
            model, [source, source], QUESTION, instances=[instances, instances], **opts
        )
        assert [a.text for a in many] == [direct.text] * 2
        described = model.describe_instances(source, instances, **opts)
        again = model.describe_instances(loaded, instances, **opts)
        assert described.to_dict() == again.to_dict()
    named = model.describe_instances(files["list"], marks="as_is", **opts)
    record = named.to_dataset_record(video_id=1, video_path="frames")
    assert [f["frame_name"] for f in record["frame_level_caption"]] == [
        "img_0.png",
        "img_1.png",
        "img_2.png",
    ]


def test_bgr_arrays_load_at_the_edge_of_every_verb(model) -> None:
    rgb = np.asarray(image(120, 90, seed=3))
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    opts: dict[str, Any] = {"max_new_tokens": 3, "progress": False}
    expected = model.ask(rgb, QUESTION, **opts).text
    assert model.ask(bgr, QUESTION, channels="bgr", **opts).text == expected
    [answer] = instit.tasks.ask_many(model, [bgr], QUESTION, channels="bgr", **opts)
    assert answer.text == expected


def test_task_prepare_refuses_unloaded_media(files) -> None:
    from instit.tasks._media import prepare

    for media in (str(files["photo"]), files["folder"], files["list"], np.zeros((6, 8, 3))):
        with pytest.raises(InstitTypeError, match=f"prepare takes loaded media.*{FIX}"):
            prepare(media)
    picture = image(40, 30)
    assert prepare(picture).kind == "image"
    assert prepare([picture, picture]).num_frames == 2


def test_load_media_is_exported_at_the_top_level() -> None:
    assert instit.load_media is load_media


# -- the other feeders of the model: bench, finetune ----------------------------------------------


def test_finetune_materialises_loaded_media_for_each_kind_of_source(model, files) -> None:
    """Training's edge loads the conversation's media (folders whole, files sampled to
    max_frames, lists of files with their names) and the model takes what it made."""
    from instit.training.data import read_conversations
    from instit.training.finetune import _materialise

    turns = [(QUESTION, "A ball.")]
    items = [
        (files["photo"], None, turns),
        (files["folder"], None, turns),
        (files["list"], None, turns),
        (files["clip"], None, turns),
        (np.asarray(Image.open(files["photo"])), None, turns),
    ]
    counts = []
    for conversation in read_conversations(items):
        seen, _ = _materialise(model, conversation, max_frames=4)
        counts.append(1 if isinstance(seen, Image.Image) else len(seen))
        assert model.prepare_ids(seen, [1, -200])["input_ids"].shape[1] > 2
    assert counts == [1, 3, 3, 4, 1]


def test_bench_media_loaded_by_the_runner_feeds_the_model(model, tmp_path) -> None:
    """The bench runner hands the model media it loaded itself (PIL images, frame lists),
    encoded with their prefix cache: the model takes them, and answers as for the same media
    given directly."""
    from instit.bench import load_bench, make_tiny_bench, read_predictions, run_bench

    root = make_tiny_bench(tmp_path / "bench", num_questions=2)
    for config in ("image_open_ended", "video_open_ended"):
        bench = load_bench(config, root)
        output = tmp_path / f"{config}.json"
        run_bench(model, bench, output, max_new_tokens=2, progress=False)
        records = {r["question_id"]: r for r in read_predictions(output)}
        assert len(records) == len(bench.questions)
        question = bench.questions[0]
        media = question.load_media()
        prompt = question.prompt(media_token=False)
        [expected] = model.generate([media], [prompt], max_new_tokens=2)
        assert records[question.question_id]["model_prediction"] == expected


def test_a_video_is_recognised_by_its_type_in_results_views_and_training() -> None:
    """``isinstance(media, Video)``, not the attributes a Video happens to have: a Video's frames
    are keyed by its source frame numbers in ``Tracks.show``, the frames of a result and the
    training fingerprint read its frames."""
    from instit.results import media_frames
    from instit.training.data import _media_identity

    frames = [image(40, 30, seed=s) for s in range(3)]
    video = Video(frames, indices=[0, 5, 10], timestamps=[0.0, 0.5, 1.0])
    assert all(a is b for a, b in zip(media_frames(video), frames, strict=True))
    assert _media_identity(video) == _media_identity(frames)
    tracks = instit.Tracks({5: instit.Instances.from_boxes({1: [4, 4, 30, 24]})})
    [shown] = tracks.show(video)
    [by_position] = instit.Tracks({1: tracks[5]}).show(frames)
    assert shown.tobytes() == by_position.tobytes() != frames[1].tobytes()
    with pytest.raises(InstitValueError, match="the video has no frame 5"):
        tracks.show(frames)  # a list is keyed by position


class _Replier:
    """The model protocol's ``generate`` with a fixed reply that refers to frame 2."""

    def generate(self, media: list[Any], prompts: list[str], **options: Any) -> list[str]:
        return ["[1] is at <2>."] * len(prompts)


def test_a_list_of_image_files_is_the_video_its_folder_is(files) -> None:
    """Same files, same video: every frame, the file names, and the frame numbers as times
    (the folder's rule), whether given as a folder or as a list of paths; in-memory frames have
    no times."""
    from instit.tasks import ask

    by_list = ask(_Replier(), files["list"], "When?", progress=False)
    by_folder = ask(_Replier(), files["folder"], "When?", progress=False)
    assert by_list.seconds == by_folder.seconds == [1.0]
    assert isinstance(by_list.media, Video) and by_list.media.names == by_folder.media.names
    in_memory = ask(_Replier(), load_video(files["folder"]).frames, "When?", progress=False)
    assert in_memory.seconds is None and in_memory.frames == [2]
