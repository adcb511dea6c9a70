"""Inst-It Bench: load the benchmark, run any model on it, score like the reference.

>>> from instit.bench import load_bench, run_bench, score_file
>>> bench = load_bench("video_multi_choice", "./Inst-It-Bench")      # doctest: +SKIP
>>> run_bench(my_model, bench, "out/video_mc_inference.json")        # doctest: +SKIP
>>> score_file("out/video_mc_inference.json", "mc", "out/video_mc_evaluate.json")  # doctest: +SKIP

Importing this package is light (no torch); heavy modules load on use.
"""

from __future__ import annotations

from instit.bench.data import BenchQuestion, BenchSplit, load_bench, safe_extract
from instit.bench.judge import Judge, JudgeResult
from instit.bench.protocol import CONFIGS, JUDGE_PROMPTS, PROMPTS, compose_prompt
from instit.bench.run import RunResult, merge_predictions, read_predictions, run_bench
from instit.bench.score import (
    MCScore,
    OEScore,
    extract_mc_answer,
    score_file,
    score_mc,
    score_oe,
)
from instit.bench.synthetic import make_tiny_bench

__all__ = [
    "CONFIGS",
    "JUDGE_PROMPTS",
    "PROMPTS",
    "BenchQuestion",
    "BenchSplit",
    "Judge",
    "JudgeResult",
    "MCScore",
    "OEScore",
    "RunResult",
    "compose_prompt",
    "extract_mc_answer",
    "load_bench",
    "make_tiny_bench",
    "merge_predictions",
    "read_predictions",
    "run_bench",
    "safe_extract",
    "score_file",
    "score_mc",
    "score_oe",
]
