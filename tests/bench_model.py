"""A weightless test model for the bench tests (imported by path in subprocesses)."""

from __future__ import annotations

import os
import re
from typing import Any

from instit.bench.synthetic import media_model


def logged_model(media: Any, prompt: str) -> str:
    """``media_model`` that also records which process answered which question."""
    log = os.environ["INSTIT_TEST_CALL_LOG"]
    match = re.search(r"\(q\d+\)", prompt)
    tag = match[0] if match else "?"
    with open(f"{log}.{os.environ.get('RANK', '0')}", "a", encoding="utf-8") as f:
        f.write(f"{tag}\n")
    return media_model(media, prompt)
