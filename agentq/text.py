"""Model, tool and user text is data: what makes it safe to show in a terminal or a report.

An answer, an error message from a tool, a question or a metadata value can hold anything,
including escape sequences that move a terminal's cursor, clear its screen or make a hidden
hyperlink (OSC 8), and bidi overrides that make text read differently from what it is. Every
place that shows such text strips those characters with ``printable``; each medium then escapes
what is special to it (rich markup in ``cli.render``, markdown and CSV in
``agentq.reports``).
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, the C1 range (0x9B alone is a CSI on some terminals), and
# the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` without the characters that a terminal or a renderer would act on."""
    return _UNPRINTABLE.sub("", text)
