"""Inst-It Bench protocol: the benchmark's exact prompts and how questions are composed.

The strings below are the benchmark's own (curly quotes, doubled apostrophes and trailing spaces
included); ``tests/test_bench_protocol.py`` compares them with the authors' published prompts.
Do not "fix" them: any change makes numbers incomparable with the leaderboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from instit.errors import InstitValueError

Split = Literal["image", "video"]
Format = Literal["mc", "oe"]

#: The four bench configurations (Hugging Face dataset ``Inst-IT/Inst-It-Bench``, split ``test``).
CONFIGS: dict[str, tuple[Split, Format]] = {
    "image_multi_choice": ("image", "mc"),
    "image_open_ended": ("image", "oe"),
    "video_multi_choice": ("video", "mc"),
    "video_open_ended": ("video", "oe"),
}

#: Hub id of the benchmark dataset.
BENCH_REPO_ID = "Inst-IT/Inst-It-Bench"

#: The media placeholder the reference puts before the text (LLaVA's ``DEFAULT_IMAGE_TOKEN``).
MEDIA_TOKEN = "<image>"

#: Generation settings of the reference inference scripts (greedy decoding).
DEFAULT_MAX_NEW_TOKENS = 128

#: The judge model the paper used for open-ended answers.
DEFAULT_JUDGE_MODEL = "gpt-4o-2024-08-06"

_IMAGE_MC_PRE = (
    "Based on the image, select the best answer to the following multiple-choice "
    "question. In both the question and options, specific objects are "
    "represented using the format [ID] (e.g., '[1]'', '[2]''. Respond with only "
    "the letter (A, B, C, or D) of the correct option."
)

_IMAGE_MC_POST = "The best answer is: "

_IMAGE_OE_PRE = (
    "# Task Definition:\n"
    "You are an expert in image analysis. In this task, you will receive an "
    "image, and your task is to answer the given question based on the image "
    "content.\n"
    "# Guidelines and Rules:\n"
    "- Object References: In the image, each object has a unique ID. Use this ID "
    "in your response to specify objects, formatted as [ID] for a single object "
    "(e.g., “[8]”) or as [ID1] [ID2] ... for multiple objects, such as “[3] [4] "
    "[5]”. Avoid commas, ranges, or phrases like “[1, 2, 3]” or “[1] to [3]”. "
    "The IDs in the images and questions match directly."
)

_IMAGE_OE_POST = "Based on the input image, please answer the question: "

_VIDEO_MC_PRE = (
    "Based on the video, select the best answer to the following multiple-choice "
    "question. In both the question and options, specific objects are "
    'represented using the format [ID] (e.g., "[1]", "[2]"), and time references '
    'are shown using the format <timestamp> (e.g., "at <6>" or "during '
    '<7>-<8>"). Respond with only the letter (A, B, C, or D) of the correct '
    "option."
)

_VIDEO_MC_POST = "The best answer is: "

_VIDEO_OE_PRE = (
    "# Task Definition:\n"
    "You are an expert in video analysis. In this task, you will receive a "
    "series of frames as a video, and your task is to answer the given questions "
    "based on the video content.\n"
    "# Input Format:\n"
    "There are serveral images inputs as video frames. Each frame can be "
    "referenced by its timestamp (indicating when it appears in the video). For "
    "example, the first frame can be referred to as <1>.\n"
    "# Guidelines and Rules:\n"
    "- Object References: Each object has a unique ID. Use this ID in your "
    "response to specify objects, formatted as [ID] for a single object (e.g., "
    "“[8]”) or as [ID1] [ID2] ... for multiple objects, such as “[3] [4] [5]”. "
    "Avoid commas, ranges, or phrases like “[1, 2, 3]” or “[1] to [3]”. The IDs "
    "in the images and questions match directly.\n"
    "- Time References: Use timestamps to indicate moments or intervals in the "
    "video. For a specific moment, format as <timestamp> (e.g., “at <3>”). For "
    "an interval, use <start_timestamp>-<end_timestamp> (e.g., “during "
    "<5>-<7>”). Always enclose timestamps in <>."
)

_VIDEO_OE_POST = "Based on the input video, please answer the question: "

_JUDGE_IMAGE = (
    "\n"
    "# Task Description:\n"
    "You are an expert evaluator tasked with scoring the accuracy of responses "
    "to open-ended questions. You will be provided with a set of questions, each "
    "with a corresponding ground-truth answer, as well as responses from a "
    "tester. Your job is to assess the accuracy of each response and provide a "
    "score between 0 and 1.\n"
    "# Guidelines:\n"
    "- Score Range: Your score for each test item must be between 0 and 1. A "
    "higher score means more correctness. Choose from the following: 0 "
    "(completely incorrect), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 "
    "(completely correct)\n"
    "- For each test item, consider the question, the ground-truth answer, and "
    "the tester’s response together to determine correctness.\n"
    "- Objects in questions and answers may be referenced using the format [ID] "
    "(e.g., [1], [2]). Ensure that any objects referenced in the tester’s "
    "response match correctly with the ground-truth answer.\n"
    "# Input Format:\n"
    "The input is a set of test items to be scored, where each item includes: \n"
    "- `question`; \n"
    "- `ground truth answer for the question`; \n"
    "- `response from the tester`.\n"
    "Now, let's begin the evaluation, here are the input test items: \n"
)

_JUDGE_VIDEO = (
    "\n"
    "# Task Description:\n"
    "You are an expert evaluator tasked with scoring the accuracy of responses "
    "to open-ended questions. You will be provided with a set of questions, each "
    "with a corresponding ground-truth answer, as well as responses from a "
    "tester. Your job is to assess the accuracy of each response and provide a "
    "score between 0 and 1.\n"
    "# Guidelines:\n"
    "- Score Range: Your score for each test item must be between 0 and 1. A "
    "higher score means more correctness. Choose from the following: 0 "
    "(completely incorrect), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 "
    "(completely correct)\n"
    "- For each test item, consider the question, the ground-truth answer, and "
    "the tester’s response together to determine correctness.\n"
    "- Objects in questions and answers may be referenced using the format [ID] "
    "(e.g., [1], [2]). Ensure that any objects referenced in the tester’s "
    "response match correctly with the ground-truth answer.\n"
    "- Time points may be indicated with <timestamp> (e.g., <1>), and time "
    "intervals with <start_timestamp>-<end_timestamp> (e.g., <3>-<5>). Verify "
    "that the tester’s response includes accurate time expressions.\n"
    "# Input Format:\n"
    "The input is a set of test items to be scored, where each item includes: \n"
    "- `question`; \n"
    "- `ground truth answer for the question`; \n"
    "- `response from the tester`.\n"
    "Now, let's begin the evaluation, here are the input test items:\n"
)


@dataclass(frozen=True)
class PromptPair:
    """The text the benchmark puts before (``pre``) and after (``post``) each question."""

    pre: str
    post: str


#: ``(split, format) -> PromptPair`` exactly as the benchmark defines them.
PROMPTS: dict[tuple[Split, Format], PromptPair] = {
    ("image", "mc"): PromptPair(_IMAGE_MC_PRE, _IMAGE_MC_POST),
    ("image", "oe"): PromptPair(_IMAGE_OE_PRE, _IMAGE_OE_POST),
    ("video", "mc"): PromptPair(_VIDEO_MC_PRE, _VIDEO_MC_POST),
    ("video", "oe"): PromptPair(_VIDEO_OE_PRE, _VIDEO_OE_POST),
}

#: ``split -> judge system prompt`` for open-ended scoring.
JUDGE_PROMPTS: dict[Split, str] = {"image": _JUDGE_IMAGE, "video": _JUDGE_VIDEO}


def compose_prompt(
    split: Split,
    fmt: Format,
    question: str,
    choices: tuple[str, str, str, str] | None = None,
    *,
    media_token: bool = False,
) -> str:
    """The exact text the benchmark feeds the model for one question.

    Multiple choice: ``pre\\nquestion\\nA. a\\nB. b\\nC. c\\nD. d\\npost``; open-ended:
    ``pre\\npost\\nquestion``.  With ``media_token=True`` the reference's ``<image>\\n`` is put
    first (what a LLaVA-style chat template expects); models that place the media themselves
    (``InstIt``, most callables) take the text without it.
    """
    if (split, fmt) not in PROMPTS:
        raise InstitValueError(
            f"unknown bench split/format {split!r}/{fmt!r}: use 'image' or 'video' and 'mc' or 'oe'"
        )
    pair = PROMPTS[(split, fmt)]
    if fmt == "mc":
        if choices is None or len(choices) != 4:
            raise InstitValueError(
                "a multiple-choice question needs exactly four choices (A-D): "
                "pass choices=(a, b, c, d)"
            )
        options = "\n".join(
            f"{letter}. {text}" for letter, text in zip("ABCD", choices, strict=True)
        )
        text = f"{pair.pre}\n{question}\n{options}\n{pair.post}"
    else:
        text = f"{pair.pre}\n{pair.post}\n{question}"
    return f"{MEDIA_TOKEN}\n{text}" if media_token else text
