"""The two verbs: :func:`ask` questions about marked media, :func:`describe_instances`.

Both take a loaded model (:class:`instit.InstIt`, or anything implementing
:class:`GenerativeModel`), an image or a video, and optionally the instances whose marks to
draw; both return JSON-ready result objects (:mod:`instit.results`) that point back to instances
(``[ID]``) and frames (``<t>``).  ``InstIt.ask`` / ``InstIt.describe_instances`` call these.
"""

from __future__ import annotations

from instit.prompting.describe import DescribePrompts
from instit.tasks._media import GenerativeModel
from instit.tasks.ask import ask, ask_many
from instit.tasks.describe import describe_instances

__all__ = ["DescribePrompts", "GenerativeModel", "ask", "ask_many", "describe_instances"]
