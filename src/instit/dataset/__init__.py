"""The Inst-It Dataset: stream and validate its annotation files, convert them for SFT.

>>> from instit.dataset import read_video_records, convert_to_llava
>>> for video in read_video_records("inst_it_dataset_video_21k.json"):   # doctest: +SKIP
...     print(video.video_id, len(video.frame_level_caption))
>>> convert_to_llava("inst_it_dataset_video_21k.json", "video_sft.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

from instit.dataset.schema import (
    FrameCaption,
    ImageRecord,
    JsonArrayReader,
    QAPair,
    VideoRecord,
    iter_json_array,
    read_image_records,
    read_records,
    read_video_records,
)
from instit.dataset.to_llava import (
    ConversionResult,
    convert_to_llava,
    image_to_llava,
    video_to_llava,
)

__all__ = [
    "ConversionResult",
    "FrameCaption",
    "ImageRecord",
    "JsonArrayReader",
    "QAPair",
    "VideoRecord",
    "convert_to_llava",
    "image_to_llava",
    "iter_json_array",
    "read_image_records",
    "read_records",
    "read_video_records",
    "video_to_llava",
]
