"""Chat prompts carried through the runner as strings.

The runner renders every prompt to one context string (requests are plain, hashable
strings so identical prompts dedupe and the resume cache keys on content). With
``api: chat`` the server applies its own chat template, so the backend's
``apply_chat_template`` returns the messages themselves, serialised after a marker, and
the backend turns them back into ``messages`` when it sends the request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

MARK = "<|evalkit:messages|>"


def encode(messages: Sequence[dict[str, str]]) -> str:
    """The context string that stands for ``messages``."""
    return MARK + json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], ensure_ascii=False)


def decode(context: str) -> list[dict[str, str]] | None:
    """The messages ``context`` stands for, or None for a plain-text prompt."""
    if not context.startswith(MARK):
        return None
    return json.loads(context[len(MARK):])


def as_messages(context: str) -> list[dict[str, str]]:
    """Messages for a chat request: a plain prompt becomes one user turn."""
    return decode(context) or [{"role": "user", "content": context}]
