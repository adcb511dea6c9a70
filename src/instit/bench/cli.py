"""``instit bench run`` and ``instit bench score``.

:func:`add_bench_parser` plugs both into the top-level ``instit`` parser; ``python -m
instit.bench run ...`` (and ``accelerate launch -m instit.bench run ...``) runs them standalone.
Exit codes as every verb (:mod:`instit.cli_support`): 0 ok, 2 bad usage or input, 1 any other
failure.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from instit.cli_support import (
    EXIT_OK,
    add_device_map_option,
    add_progress_option,
    help_formatter,
    positive_int,
)
from instit.errors import InstitTypeError, InstitValueError, JudgeError

RUN_EXAMPLES = """\
examples:
  # the paper's setting: an Inst-It checkpoint on every config, predictions in out/
  instit bench run --model Inst-IT/LLaVA-Next-Inst-It-Qwen2-7B --output-dir out
  # your own system: any callable (media, prompt) -> str, from a module or a .py file
  instit bench run --callable mypkg.bench:answer --config video_multi_choice --bench ./Inst-It-Bench
  # 2 GPUs (or --cpu processes): each takes a shard, process 0 merges once
  accelerate launch --num_processes 2 -m instit.bench run --callable my_model.py:answer --json
"""

SCORE_EXAMPLES = """\
examples:
  instit bench score --format mc out/video_mc_inference.json --log out/video_mc_evaluate.json
  OPENAI_API_KEY=... instit bench score --format oe out/image_oe_inference.json \\
      --log out/image_oe_evaluate.json --concurrency 16
  # any OpenAI-compatible server (vLLM, llama.cpp, a proxy ...), key from another variable
  instit bench score --format oe preds.json --log log.json \\
      --base-url http://127.0.0.1:8000/v1 --judge-model Qwen2.5-72B --api-key-env MY_KEY
"""

#: Output file names of the reference inference scripts, by config.
OUTPUT_NAMES = {
    "image_multi_choice": "image_mc_inference.json",
    "image_open_ended": "image_oe_inference.json",
    "video_multi_choice": "video_mc_inference.json",
    "video_open_ended": "video_oe_inference.json",
}


def load_callable(spec: str) -> Any:
    """``module:attr`` or ``path/to/file.py:attr`` -> the object (a callable model)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise InstitValueError(
            f"--callable {spec!r} is not MODULE:CALLABLE or FILE.py:CALLABLE "
            "(e.g. mypkg.bench:answer)"
        )
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InstitValueError(f"--callable file {path} does not exist: check the path")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InstitValueError(
            f"cannot import {module_name!r} for --callable ({exc}): check the module path"
        ) from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise InstitValueError(f"{module_name!r} has no attribute {attr!r} (--callable)") from None
    if not callable(target) and not callable(getattr(target, "generate", None)):
        raise InstitTypeError(
            f"--callable {spec!r} is a {type(target).__name__}, not a callable "
            "(media, prompt) -> str"
        )
    return target


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def _producer(args: argparse.Namespace) -> str:
    """What answers, as recorded beside the predictions: the checkpoint or the callable."""
    if args.model is not None:
        local = Path(args.model).expanduser()
        return f"checkpoint {local.resolve() if local.exists() else args.model}"
    module, _, attr = args.callable.rpartition(":")
    if module.endswith(".py"):
        module = str(Path(module).resolve())
    return f"{module}:{attr}"


def _cmd_run(args: argparse.Namespace) -> int:
    from instit._files import check_output
    from instit.bench.data import load_bench
    from instit.bench.protocol import CONFIGS
    from instit.bench.run import check_producer, producer_record, run_bench

    _resolve_model_flags(args)
    if (args.model is None) == (args.callable is None):
        raise InstitValueError(
            "pass exactly one of --model CHECKPOINT or --callable MODULE:CALLABLE"
        )
    if args.shard and not 0 <= args.shard[0] < args.shard[1]:
        raise InstitValueError(
            f"--shard {args.shard[0]} {args.shard[1]} is invalid: use INDEX COUNT with "
            "0 <= INDEX < COUNT"
        )
    if args.device_map is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1:
        raise InstitValueError(
            "--device-map spreads one model over every GPU, but this is one of "
            f"{os.environ['WORLD_SIZE']} processes; run one process with --device-map, "
            "or several without it (one GPU each)"
        )
    configs = args.config or list(CONFIGS)
    # every output problem is reported before a model is loaded
    check_output(args.output_dir, kind="folder", overwrite=True, flag="", what="--output-dir")
    producer = _producer(args)
    record = producer_record(producer, args.max_new_tokens, 0.0, args.media_token)
    for config in configs:
        output = Path(args.output_dir) / OUTPUT_NAMES[config]
        check_producer(output, record, force_resume=args.force_resume, flag="--force-resume")
    if args.callable is not None:
        model = load_callable(args.callable)
    else:
        from instit.model import InstIt

        device = args.device
        local_rank = os.environ.get("LOCAL_RANK")
        if (
            device == "auto"
            and args.device_map is None
            and local_rank is not None
            and int(os.environ.get("WORLD_SIZE", 1)) > 1
        ):
            import torch

            device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
        model = InstIt.from_pretrained(
            args.model,
            device=device,
            device_map=args.device_map,
            adapter=args.adapter,
            progress=not args.no_progress,
        )
    results = []
    for config in configs:
        bench = load_bench(config, args.bench, videos_dir=args.videos_dir, offline=args.offline)
        output = Path(args.output_dir) / OUTPUT_NAMES[config]
        shard = tuple(args.shard) if args.shard else None
        result = run_bench(
            model,
            bench,
            output,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            media_token=args.media_token,
            shard=shard,  # type: ignore[arg-type]
            progress=not args.no_progress,
            producer=producer,
            force_resume=args.force_resume,
        )
        results.append(result)
    if results and results[0].process_index == 0:
        lines = [
            f"{r.config}: {r.num_generated} answered, {r.num_resumed} resumed -> {r.output}"
            for r in results
        ]
        _print(args, {"runs": [r.to_dict() for r in results]}, "\n".join(lines))
    return EXIT_OK


def _looks_like_callable(value: str) -> bool:
    """``MODULE:CALLABLE`` / ``FILE.py:CALLABLE`` (no hub id or existing folder looks so)."""
    module, sep, attr = value.rpartition(":")
    return bool(sep and module and attr.isidentifier()) and not Path(value).exists()


def _resolve_model_flags(args: argparse.Namespace) -> None:
    """Apply the deprecated spellings: ``--checkpoint`` is ``--model``; a ``--model`` value of the
    ``MODULE:CALLABLE`` form is ``--callable`` (what ``--model`` meant here before)."""
    if args.checkpoint is not None:
        _deprecated("--checkpoint PATH", "--model PATH")
        if args.model is not None:
            raise InstitValueError("pass --model only (--checkpoint is its old name)")
        args.model = args.checkpoint
    if args.model is not None and args.callable is None and _looks_like_callable(args.model):
        _deprecated(f"--model {args.model}", f"--callable {args.model}")
        args.model, args.callable = None, args.model


def _deprecated(old: str, new: str) -> None:
    print(
        f"instit bench run: warning: {old} is deprecated and will be removed; pass {new} "
        "(--model names a checkpoint in every verb)",
        file=sys.stderr,
    )


def _cmd_score(args: argparse.Namespace) -> int:
    from instit.bench.score import OEScore, score_file

    judge = None
    if args.format == "oe":
        from instit.bench.judge import Judge

        judge = Judge(
            args.base_url,
            args.judge_model,
            api_key_env=args.api_key_env,
            timeout=args.timeout,
            max_retries=args.retries,
            backoff=args.backoff,
            concurrency=args.concurrency,
            follow_redirects=args.follow_redirects,
        )
    score = score_file(
        args.predictions, args.format, args.log, judge=judge, progress=not args.no_progress
    )
    payload = {"format": args.format, "log": args.log, **score.to_dict()}
    text = score.table() + (f"\nlog: {args.log}" if args.log else "")
    _print(args, payload, text)
    if isinstance(score, OEScore) and score.invalid_num:
        where = f"error_in_gpt_eval in {args.log}" if args.log else "the errors with --log"
        if not score.valid_num:
            raise JudgeError(
                f"the judge scored none of the {score.total_num} answers (see {where}); "
                "check --base-url, --judge-model and the server, then run again"
            )
        print(
            f"instit bench score: warning: {score.invalid_num} of {score.total_num} answers could "
            f"not be judged and are left out of the score (see {where}); run again to retry them",
            file=sys.stderr,
        )
    return EXIT_OK


def add_bench_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``bench`` with its ``run`` and ``score`` verbs to an ``instit`` subparsers object."""
    from instit.bench.judge import DEFAULT_BASE_URL
    from instit.bench.protocol import CONFIGS, DEFAULT_JUDGE_MODEL, DEFAULT_MAX_NEW_TOKENS

    bench = subparsers.add_parser(
        "bench",
        help="run and score Inst-It Bench",
        description="Run a model on Inst-It Bench and score its predictions.\n\n"
        + RUN_EXAMPLES
        + SCORE_EXAMPLES,
        formatter_class=help_formatter,
    )
    verbs = bench.add_subparsers(dest="bench_command", metavar="VERB", required=True)

    run = verbs.add_parser(
        "run",
        help="answer the bench questions with a model (resumable, multi-process)",
        description="Answer Inst-It Bench questions; writes <output-dir>/<split>_<fmt>"
        "_inference.json in the reference's predictions format.\n\n" + RUN_EXAMPLES,
        formatter_class=help_formatter,
    )
    run.add_argument("--model", help="Inst-It checkpoint (hub id or folder) to load")
    run.add_argument(
        "--callable",
        help="your model instead: MODULE:CALLABLE or FILE.py:CALLABLE, (media, prompt) -> str",
    )
    run.add_argument("--checkpoint", help=argparse.SUPPRESS)  # deprecated name of --model
    run.add_argument("--device", default="auto", help="device for --model (default auto)")
    add_device_map_option(run)
    run.add_argument("--adapter", help="LoRA adapter folder (instit finetune) for --model")
    run.add_argument(
        "--bench", default=None, help="local copy of the dataset repo, or a hub id (default hub)"
    )
    run.add_argument(
        "--config", action="append", choices=list(CONFIGS), help="repeatable; default: all four"
    )
    run.add_argument("--output-dir", default="output", help="where predictions go (default output)")
    run.add_argument("--videos-dir", default=None, help="extracted videos_vpt folder")
    run.add_argument("--offline", action="store_true", help="use only the local hub cache")
    run.add_argument("--batch-size", type=positive_int, default=1)
    run.add_argument("--max-new-tokens", type=positive_int, default=DEFAULT_MAX_NEW_TOKENS)
    run.add_argument(
        "--media-token", action="store_true", help="prefix prompts with '<image>\\n' for callables"
    )
    run.add_argument(
        "--shard", type=int, nargs=2, metavar=("INDEX", "COUNT"), help="run one shard by hand"
    )
    run.add_argument(
        "--force-resume",
        action="store_true",
        help="keep answers another model or setting left in --output-dir and add this one's",
    )
    add_progress_option(run, "no progress bar")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON")
    run.set_defaults(handler=_cmd_run)

    score = verbs.add_parser(
        "score",
        help="score predictions (multiple choice, or open-ended with a judge)",
        description="Score a predictions file like the reference evaluate.py and write its "
        "evaluation log.\nThe judge's API key is read from an environment variable only.\n\n"
        + SCORE_EXAMPLES,
        formatter_class=help_formatter,
    )
    score.add_argument("predictions", help="predictions JSON (reference format)")
    score.add_argument("--format", required=True, choices=["mc", "oe"])
    score.add_argument("--log", help="evaluation log JSON to write (reference field names)")
    score.add_argument(
        "--base-url", default=None, help=f"OpenAI-compatible API root (default {DEFAULT_BASE_URL})"
    )
    score.add_argument("--judge-model", default=DEFAULT_JUDGE_MODEL)
    score.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable with the key")
    score.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    score.add_argument(
        "--timeout", type=float, default=60.0, help="deadline in s for each whole request"
    )
    score.add_argument("--retries", type=int, default=4, help="retries per failed item")
    score.add_argument(
        "--backoff", type=float, default=1.0, help="first retry delay in s (doubles, + jitter)"
    )
    score.add_argument(
        "--follow-redirects",
        action="store_true",
        help="follow 307/308 redirects to the same origin (others always stop scoring)",
    )
    add_progress_option(score, "no progress bar")
    score.add_argument("--json", action="store_true", help="print the scores as JSON")
    score.set_defaults(handler=_cmd_score)
    return bench
