"""Neutralise Unicode bidirectional controls in text a report shows.

A model, attack or class name holding a right-to-left override (U+202E) or an isolate can
make a page display text in another order than it holds ("Trojan Source", CVE-2021-42574):
a reviewer could read a different name than the one audited. Reports show each such
character as a visible code point instead (``[U+202E]``).
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

#: Embeddings, overrides, isolates and the implicit direction marks.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutralise_bidi(value: Any) -> Any:
    """``value`` with every bidi control shown as ``[U+XXXX]``; non-text passes unchanged
    (`Markup` stays `Markup`: the replacement holds no HTML)."""
    if not isinstance(value, str) or not BIDI_CONTROLS.search(value):
        return value
    text = BIDI_CONTROLS.sub(lambda match: f"[U+{ord(match.group()):04X}]", str(value))
    return Markup(text) if isinstance(value, Markup) else text
