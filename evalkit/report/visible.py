"""Make invisible and direction-changing characters visible in the HTML report.

Model outputs and data are untrusted text. Autoescaping stops markup, but a NUL, an ESC
sequence or a right-to-left override (U+202E) would still reach the page raw: invisible,
or reordering what the reader sees (an answer that looks right but is not). Every value
the templates print passes through ``visible``, which writes such a character as its
escape (``\\x1b``, ``\\u202e``); tabs and line breaks are kept.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

# C0 controls but tab/newline/carriage return, DEL and C1 controls, bidirectional marks,
# embeddings, overrides and isolates, line/paragraph separators, zero-width characters.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every hidden or bidirectional character written as its escape."""
    return _HIDDEN.sub(_escape, text)


def finalize(value: Any) -> Any:
    """Jinja ``finalize``: applied to every printed value (markup built by us is left alone)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value
