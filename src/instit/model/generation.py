"""Generation settings: the one place that checks and merges what a caller asks of ``generate``.

:func:`check_generation` checks the arguments every generating entry point takes
(``max_new_tokens``, ``temperature``, ``top_p``, a ``transformers.GenerationConfig`` and
``generate_kwargs``); :func:`generation_config` merges them over the reference's greedy default
into the ``GenerationConfig`` that :meth:`instit.InstIt.generate` hands to transformers.

Precedence, lowest first: instit's defaults (greedy, the model's end tokens, the visual
placeholders suppressed), the named arguments, the fields a ``generation_config`` sets (those
differing from transformers' defaults), then ``generate_kwargs``.  The placeholders stay
suppressed whatever ``suppress_tokens`` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from instit.errors import InstitTypeError, InstitValueError

__all__ = ["check_generation", "generation_config"]

_MANAGED = {
    "max_new_tokens": "pass max_new_tokens= to generate/ask",
    "temperature": "pass temperature= to generate/ask",
    "top_p": "pass top_p= to generate",
    "use_cache": "instit manages the KV cache (the prefix cache needs it)",
    "cache_implementation": "instit manages the KV cache (a DynamicCache)",
    "cache_config": "instit manages the KV cache (a DynamicCache)",
    "return_dict_in_generate": "generate returns one answer text per prompt",
    "num_return_sequences": "generate returns one answer per prompt; repeat the prompt instead",
}
_META = {"transformers_version", "_from_model_config", "_commit_hash"}


def _known_fields() -> set[str]:
    from transformers import GenerationConfig

    return set(vars(GenerationConfig()))


def check_generation(
    max_new_tokens: int,
    temperature: float,
    top_p: float | None = None,
    generation_config: Any = None,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check generation arguments; returns ``generate_kwargs`` as a new dict.

    Raises:
        InstitTypeError: a value of the wrong type.
        InstitValueError: a value out of range, or a ``generate_kwargs`` key that is no
            ``GenerationConfig`` field or that instit sets itself (the message says which
            argument to use instead).
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise InstitTypeError(
            f"max_new_tokens={max_new_tokens!r} is not an int; pass a positive whole number"
        )
    if max_new_tokens <= 0:
        raise InstitValueError(
            f"max_new_tokens={max_new_tokens}; pass a positive whole number, e.g. 256"
        )
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise InstitTypeError(
            f"temperature={temperature!r} is not a number; pass 0 (greedy) or more"
        )
    if not temperature >= 0:
        raise InstitValueError(f"temperature={temperature}; pass 0 (greedy) or more, e.g. 0.7")
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
            raise InstitTypeError(f"top_p={top_p!r} is not a number; pass a number in (0, 1]")
        if not 0 < top_p <= 1:
            raise InstitValueError(f"top_p={top_p}; pass a number in (0, 1], e.g. 0.9")
    if generation_config is not None:
        from transformers import GenerationConfig

        if not isinstance(generation_config, GenerationConfig):
            raise InstitTypeError(
                "generation_config must be a transformers.GenerationConfig, got "
                f"{type(generation_config).__name__}; for single settings use "
                "generate_kwargs={'num_beams': 3, ...}"
            )
    if generate_kwargs is None:
        return {}
    if not isinstance(generate_kwargs, Mapping):
        raise InstitTypeError(
            "generate_kwargs must be a dict of GenerationConfig fields (e.g. {'num_beams': 3}), "
            f"got {type(generate_kwargs).__name__}"
        )
    settings = dict(generate_kwargs)
    if settings:
        known = _known_fields()
        for key in settings:
            if key in _MANAGED:
                raise InstitValueError(f"generate_kwargs may not set {key!r}: {_MANAGED[key]}")
            if key not in known:
                raise InstitValueError(
                    f"generate_kwargs has {key!r}, which is no transformers.GenerationConfig "
                    "field; use the fields of GenerationConfig (num_beams, "
                    "repetition_penalty, top_k, ...)"
                )
    return settings


def generation_config(
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float | None,
    generation_config: Any,
    generate_kwargs: Mapping[str, Any] | None,
    eos_token_ids: Iterable[int],
    pad_token_id: int,
    suppress_tokens: Iterable[int],
) -> Any:
    """The checked ``transformers.GenerationConfig`` for one ``generate`` call.

    ``eos_token_ids`` and ``pad_token_id`` are the model's (a ``generation_config`` or
    ``generate_kwargs`` may replace them); ``suppress_tokens`` (the visual placeholders) are
    always suppressed.  With every optional argument left out the result is the reference's
    greedy decoding.
    """
    from transformers import GenerationConfig

    extra = check_generation(max_new_tokens, temperature, top_p, generation_config, generate_kwargs)
    settings: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "eos_token_id": sorted(set(eos_token_ids)),
        "pad_token_id": pad_token_id,
        "do_sample": temperature > 0,
    }
    if temperature > 0:
        settings["temperature"] = temperature
        settings["top_p"] = 1.0 if top_p is None else top_p
    if generation_config is not None:
        chosen = {k: v for k, v in generation_config.to_diff_dict().items() if k not in _META}
        for key in ("use_cache", "cache_implementation", "return_dict_in_generate"):
            if key in chosen:
                raise InstitValueError(
                    f"generation_config sets {key!r}; leave it at its default: {_MANAGED[key]}"
                )
        settings.update(chosen)
    settings.update(extra)
    suppressed = set(settings.get("suppress_tokens") or ()) | set(suppress_tokens)
    if suppressed:
        settings["suppress_tokens"] = sorted(suppressed)
    else:
        settings.pop("suppress_tokens", None)
    if (settings.get("num_return_sequences") or 1) != 1:
        count = settings["num_return_sequences"]
        raise InstitValueError(f"num_return_sequences={count}: {_MANAGED['num_return_sequences']}")
    check_generation(settings["max_new_tokens"], temperature)
    beams = settings.get("num_beams")
    if beams is not None and (isinstance(beams, bool) or not isinstance(beams, int) or beams < 1):
        raise InstitValueError(f"num_beams={beams!r}; pass a positive int (1: no beam search)")
    try:
        config = GenerationConfig(**settings)
        config.validate()
    except (ValueError, TypeError) as exc:
        raise InstitValueError(
            f"the generation settings are inconsistent ({exc}); fix generation_config / "
            "generate_kwargs"
        ) from exc
    return config
