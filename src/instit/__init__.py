"""instit: instance-level image and video understanding with the Inst-It models.

``import instit`` is cheap: heavy dependencies (torch, transformers, OpenCV, PyAV) are imported
only when the feature that needs them is first used.  Public names are resolved lazily from the
module that owns them (see ``_EXPORTS``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # instances
    "Instance": "instit.instances",
    "Instances": "instit.instances",
    "Tracks": "instit.instances",
    "GeometryWarning": "instit.instances",
    "UnsampledFramesWarning": "instit.instances",
    "UnknownIdError": "instit.instances",
    "encode_rle": "instit.instances",
    "decode_rle": "instit.instances",
    # media
    "load_image": "instit.media",
    "load_media": "instit.media",
    # marks
    "MarkStyle": "instit.marks",
    "Placement": "instit.marks",
    "draw_marks": "instit.marks",
    "draw_marks_frames": "instit.marks",
    "layout_marks": "instit.marks",
    # video
    "Video": "instit.video",
    "load_video": "instit.video",
    # model
    "InstIt": "instit.model",
    "EncodedMedia": "instit.model",
    "convert": "instit.model",
    # segment
    "Segmenter": "instit.segment",
    "Detector": "instit.segment",
    "find_instances": "instit.segment",
    # training
    "finetune": "instit.training",
    # results
    "Answer": "instit.results",
    "AnswerStream": "instit.results",
    "ImageDescription": "instit.results",
    "FrameDescription": "instit.results",
    "VideoDescription": "instit.results",
    # prompting.describe
    "DescribePrompts": "instit.prompting.describe",
    # examples_data
    "example_image": "instit.examples_data",
    # errors
    "InstitError": "instit.errors",
    "InstitValueError": "instit.errors",
    "InstitTypeError": "instit.errors",
    "MediaError": "instit.errors",
    "InstancesError": "instit.errors",
    "VideoError": "instit.errors",
    "CheckpointError": "instit.errors",
    "ModelInputError": "instit.errors",
    "DependencyError": "instit.errors",
    "NotEnoughMemoryError": "instit.errors",
    "DatasetError": "instit.errors",
    "JudgeError": "instit.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'instit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from instit.errors import (
        CheckpointError as CheckpointError,
        DatasetError as DatasetError,
        DependencyError as DependencyError,
        InstancesError as InstancesError,
        InstitError as InstitError,
        InstitTypeError as InstitTypeError,
        InstitValueError as InstitValueError,
        JudgeError as JudgeError,
        MediaError as MediaError,
        ModelInputError as ModelInputError,
        NotEnoughMemoryError as NotEnoughMemoryError,
        VideoError as VideoError,
    )
    from instit.examples_data import (
        example_image as example_image,
    )
    from instit.instances import (
        GeometryWarning as GeometryWarning,
        Instance as Instance,
        Instances as Instances,
        Tracks as Tracks,
        UnknownIdError as UnknownIdError,
        UnsampledFramesWarning as UnsampledFramesWarning,
        decode_rle as decode_rle,
        encode_rle as encode_rle,
    )
    from instit.marks import (
        MarkStyle as MarkStyle,
        Placement as Placement,
        draw_marks as draw_marks,
        draw_marks_frames as draw_marks_frames,
        layout_marks as layout_marks,
    )
    from instit.media import (
        load_image as load_image,
        load_media as load_media,
    )
    from instit.model import (
        EncodedMedia as EncodedMedia,
        InstIt as InstIt,
        convert as convert,
    )
    from instit.prompting.describe import (
        DescribePrompts as DescribePrompts,
    )
    from instit.results import (
        Answer as Answer,
        AnswerStream as AnswerStream,
        FrameDescription as FrameDescription,
        ImageDescription as ImageDescription,
        VideoDescription as VideoDescription,
    )
    from instit.segment import (
        Detector as Detector,
        Segmenter as Segmenter,
        find_instances as find_instances,
    )
    from instit.training import (
        finetune as finetune,
    )
    from instit.video import (
        Video as Video,
        load_video as load_video,
    )
