"""Video input: sample frames exactly and fast from video files, folders and frame lists.

``instit.load_video(source, num_frames=8)`` returns a :class:`Video` (RGB PIL frames plus their
source frame numbers and presentation timestamps).  PyAV is imported only when a video file is
read.  See ``docs/video.md`` for the sampling rules and the exactness guarantees.
"""

from __future__ import annotations

from instit.video.core import Video, load_video
from instit.video.sampling import select_frames, uniform_positions

__all__ = ["Video", "load_video", "select_frames", "uniform_positions"]
