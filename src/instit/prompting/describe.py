"""The prompts :func:`instit.tasks.describe_instances` sends, and the parser for the replies.

The Inst-It annotation pipeline (paper, Sec. 3) describes a marked image or frame in two ways:
every instance by its ID (instance-level captions) and the whole picture (image-level caption);
for a video it adds what changed between consecutive frames and a summary of the whole video.
The models were tuned on replies that list instances as ``[1]: ...`` lines, so the default
prompts ask for exactly that, and :func:`parse_instance_captions` reads it back tolerantly.

All prompts are fields of :class:`DescribePrompts`; pass your own to change any of them::

    prompts = DescribePrompts(image="Describe the image in one sentence.")
    instit.tasks.describe_instances(model, image, instances, prompts=prompts)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

from instit.errors import InstitTypeError, InstitValueError
from instit.prompting.references import format_ids

__all__ = ["DescribePrompts", "parse_instance_captions"]


@dataclass(frozen=True)
class DescribePrompts:
    """The questions :func:`~instit.tasks.describe_instances` asks (all overridable).

    Placeholders (``str.format`` fields):

    - ``instances``: ``{ids}`` -- the IDs to describe written as ``[1] [2] [3]``.
    - ``single_instance``: ``{id}`` -- one ID number (the prompt writes the brackets).
    - ``temporal_change``: ``{prev}``, ``{t}`` (1-based frames) and ``{num_frames}``.
    - ``video``: ``{num_frames}``.
    - ``all_instances``, ``image``: none.

    Attributes:
        instances: Ask for a caption of each listed instance, one ``[ID]: caption`` line each.
        all_instances: The same when the IDs on the media are not known (``marks="as_is"``
            without instances).
        single_instance: Ask again for one instance the first reply left out.
        image: Ask for a caption of the whole image (or video frame).
        temporal_change: Ask, about the whole video, what changed from frame ``prev`` to ``t``.
        video: Ask for a caption of the whole video.
    """

    instances: str = (
        "Describe each of the marked instances {ids} in the image. Write one line per instance: "
        "its ID in square brackets, a colon, then a detailed description of its appearance, "
        'its action and its relation to the other instances, for example "[1]: a man in a '
        'red jacket holding [2]". Refer to other instances by their IDs.'
    )
    all_instances: str = (
        "Describe each instance marked with a number in the image. Write one line per "
        "instance: its ID in square brackets, a colon, then a detailed description of its "
        'appearance, its action and its relation to the other instances, for example "[1]: a '
        'man in a red jacket holding [2]". Refer to other instances by their IDs.'
    )
    single_instance: str = (
        "Describe [{id}] in the image in detail: its appearance, its action and its relation "
        "to the other marked instances, which you refer to by their IDs."
    )
    image: str = (
        "Describe the image in detail. Refer to the marked instances by their IDs in square "
        "brackets, such as [1]."
    )
    temporal_change: str = (
        "The video has {num_frames} frames, referred to as <1> to <{num_frames}>. Describe what "
        "changes from <{prev}> to <{t}>: how the instances move, act and interact, and which "
        "ones appear or disappear. Refer to instances by their IDs, such as [1]."
    )
    video: str = (
        "Describe the video in detail. Refer to instances by their IDs, such as [1], and to "
        "moments by their timestamps, such as <3> for a frame or <2>-<4> for an interval."
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not isinstance(value, str) or not value.strip():
                raise InstitTypeError(
                    f"DescribePrompts.{spec.name} must be a non-empty str, got {value!r}; "
                    "pass a prompt text or leave the default"
                )
        checks = {
            "instances": {"ids": "[1] [2]"},
            "single_instance": {"id": 1},
            "temporal_change": {"prev": 1, "t": 2, "num_frames": 2},
            "video": {"num_frames": 2},
            "all_instances": {},
            "image": {},
        }
        for name, values in checks.items():
            try:
                getattr(self, name).format(**values)
            except (KeyError, IndexError, ValueError) as error:
                raise InstitValueError(
                    f"DescribePrompts.{name} has a placeholder it cannot fill ({error}); it may "
                    f"use {sorted(values) or 'no placeholders'} (write literal braces as {{{{ }}}})"
                ) from None

    def instances_prompt(self, ids: Sequence[int] | None) -> str:
        """The instance-captions prompt for ``ids`` (``None``: the IDs are not known)."""
        if ids is None:
            return self.all_instances
        return self.instances.format(ids=format_ids(list(ids)))

    def single_instance_prompt(self, instance_id: int) -> str:
        """The prompt that asks for one instance."""
        return self.single_instance.format(id=instance_id)

    def temporal_change_prompt(self, prev: int, t: int, num_frames: int) -> str:
        """The prompt that asks what changed from frame ``prev`` to frame ``t``."""
        return self.temporal_change.format(prev=prev, t=t, num_frames=num_frames)

    def video_prompt(self, num_frames: int) -> str:
        """The prompt that asks for the video caption."""
        return self.video.format(num_frames=num_frames)


# An entry head: at the start of a line, an optional bullet / list number / emphasis, then the
# ID in brackets (possibly in bold) and an optional ":" / "-" separator:
#   "[1]: ...", "[1] - ...", "**[1]**: ...", "1. [1]: ...", "- **[1]:** ...", "Instance [1]: ..."
_LINE_HEAD = re.compile(
    r"^[ \t>]*(?:[-*•+][ \t]+|\d+[.)][ \t]+)?(?:\*\*|__)?[ \t]*(?:instance[ \t]*)?"
    r"\[[ \t]*(?P<id>\d+)[ \t]*\][ \t]*(?:\*\*|__)?[ \t]*(?:[:：\-–—][ \t]*(?:\*\*|__)?)?[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
# An entry head inside a line: "[1]: ..." needs its colon there ("...holding [2]." is prose).
_INLINE_HEAD = re.compile(
    r"(?<=[.;!?])[ \t]+(?:\*\*|__)?\[[ \t]*(?P<id>\d+)[ \t]*\](?:\*\*|__)?[ \t]*[:：][ \t]*"
)


def parse_instance_captions(text: str) -> dict[int, str]:
    """Read ``{instance ID: caption}`` out of a reply that describes instances one by one.

    Accepts one entry per line in the styles ``[1]: ...``, ``[1] - ...``, ``[1] ...``,
    ``**[1]**: ...``, ``**[1]:** ...``, ``1. [1]: ...``, ``- [1]: ...``; entries that continue
    over several lines (the following lines are joined with spaces); and several ``[1]: ...
    [2]: ...`` entries on one line (a head inside a line needs its colon and must follow the end
    of a sentence).  Text before the first entry (``"Here are the descriptions:"``) is ignored.
    An ID described twice keeps both texts, joined.  IDs must be positive.

    Example:
        >>> parse_instance_captions("**[1]**: a man\\nholding [2].\\n[2] - a cup.")
        {1: 'a man holding [2].', 2: 'a cup.'}
    """
    if not isinstance(text, str):
        raise InstitTypeError(
            f"parse_instance_captions() needs a str, got {type(text).__name__}; pass the reply"
        )
    heads = [(m.start(), m.end(), int(m.group("id"))) for m in _LINE_HEAD.finditer(text)]
    heads += [(m.start(), m.end(), int(m.group("id"))) for m in _INLINE_HEAD.finditer(text)]
    heads.sort()
    captions: dict[int, str] = {}
    for n, (_, body_start, instance_id) in enumerate(heads):
        body_end = heads[n + 1][0] if n + 1 < len(heads) else len(text)
        body = _clean(text[body_start:body_end])
        if instance_id <= 0 or not body:
            continue
        captions[instance_id] = (
            f"{captions[instance_id]} {body}" if instance_id in captions else body
        )
    return dict(sorted(captions.items()))


def _clean(body: str) -> str:
    """One caption: lines joined, stray emphasis markers and trailing list commas removed."""
    lines = [line.strip() for line in body.strip().splitlines()]
    joined = " ".join(line for line in lines if line)
    joined = joined.strip().strip("*_").strip()
    return joined.rstrip(",").strip()
