"""Which things are in an image, and which numeric ID each one carries.

:class:`Instances` holds the instances of one image (all of one *kind*: masks, boxes, polygons
or points) with their IDs -- the numbers that Set-of-Marks prompts show on the image and that
the text refers to as ``[1]``, ``[3]``.  :class:`Tracks` holds one :class:`Instances` per video
frame, sharing IDs across frames.

Coordinates are pixels, ``x`` to the right and ``y`` down.  Boxes are ``(x0, y0, x1, y1)``
corners; the box derived from a mask covers whole pixels, so a mask whose pixels span columns
3..5 has ``x0 = 3, x1 = 6`` (COCO's convention, ``x1 = x + w``).  Polygon vertices use OpenCV's
convention (pixel centres at integer coordinates), and the box of a polygon is the extent of its
vertices.

Geometry that leaves the image is clipped with a :class:`GeometryWarning` (boxes, polygon
boxes) or refused (points); everything else that is wrong raises
:class:`~instit.errors.InstancesError` (or :class:`~instit.errors.InstitTypeError` for a wrong
type) naming the instance ID.  Inputs are always copied; arrays handed out are read-only.

The package, one module per job:

* :mod:`._validate` -- checks of IDs, sizes, arrays, polygon rings and frame indices;
* :mod:`.rle` -- the COCO RLE codec (:func:`encode_rle`, :func:`decode_rle`);
* :mod:`.raster` -- polygons to masks and back (the one rasteriser, the mark renderer's too);
* :mod:`.core` -- :class:`Instance` and :class:`Instances`;
* :mod:`.tracks` -- :class:`Tracks`;
* :mod:`.formats` -- the annotation files people already have (COCO, supervision sinks).
"""

from __future__ import annotations

from instit.instances._validate import MAX_COORDINATE, MAX_ID
from instit.instances.core import (
    KINDS,
    GeometryWarning,
    Instance,
    Instances,
    Kind,
    UnknownIdError,
    _rebuild_instances,
)
from instit.instances.rle import decode_rle, encode_rle
from instit.instances.tracks import Tracks, UnsampledFramesWarning

__all__ = [
    "KINDS",
    "MAX_COORDINATE",
    "MAX_ID",
    "GeometryWarning",
    "Instance",
    "Instances",
    "Kind",
    "Tracks",
    "UnknownIdError",
    "UnsampledFramesWarning",
    "decode_rle",
    "encode_rle",
]

# the public names keep the module path they had before the package was split, so pickles and
# reprs say instit.instances.Instances, and pickles written before the split still load
for _public in (
    GeometryWarning,
    Instance,
    Instances,
    Tracks,
    UnknownIdError,
    UnsampledFramesWarning,
    decode_rle,
    encode_rle,
    _rebuild_instances,
):
    _public.__module__ = __name__
del _public
