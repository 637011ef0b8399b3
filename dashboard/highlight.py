"""A tweet shown with each word shaded by its contribution to P(negative): why it was flagged, on the page.

One renderer for the typed tweet and a file's rows (docs/design.md, "Why flagged, on the page"). The
words are the server's own (runs of non-space characters of the tweet as sent, pyfunc/explain.py), so
the page marks exactly the words it shows; every piece of the tweet is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from dashboard import charts
from dashboard.client import Prediction, WordContribution

# Shading of a word: its contribution's size against the tweet's largest, from faint to this opacity.
MAX_OPACITY = 0.75
# Contributions smaller than this (in probability) are shown unshaded: they moved nothing a tester can see.
NEUTRAL_BELOW = 0.005
TOWARDS, AGAINST, NEUTRAL = "word-towards-negative", "word-against-negative", "word-neutral"
# The tweet as typed (spaces and line breaks kept), in the page's font: the shaded words must read as prose.
TEXT_STYLE = "white-space:pre-wrap;font-family:inherit;font-size:1em"
_WORD = re.compile(r"\S+")
_RGB = {TOWARDS: charts.NEGATIVE_COLOR, AGAINST: charts.NOT_NEGATIVE_COLOR}


def word_class(contribution: float) -> str:
    """Which way a word pushed: towards `negative` (a complaint), against it, or too little to show."""
    if abs(contribution) < NEUTRAL_BELOW:
        return NEUTRAL
    return TOWARDS if contribution > 0 else AGAINST


def shade(contribution: float, strongest: float) -> str:
    """The word's background: the direction's colour, as opaque as its share of the strongest push."""
    kind = word_class(contribution)
    if kind == NEUTRAL or strongest <= 0:
        return "transparent"
    red, green, blue = (int(_RGB[kind][index : index + 2], 16) for index in (1, 3, 5))
    opacity = max(0.15, MAX_OPACITY * abs(contribution) / strongest)
    return f"rgba({red},{green},{blue},{opacity:.2f})"


def word_html(word: str, contribution: float, strongest: float, element_id: str) -> str:
    """One explained word: its class and shade say the direction and size; the tooltip gives the number."""
    kind = word_class(contribution)
    title = f"{contribution:+.3f} to proba_negative"
    return (
        f'<span id="{element_id}" class="explained-word {kind}" data-contribution="{contribution:.6f}" '
        f'title="{title}" style="background:{shade(contribution, strongest)};border-radius:3px;padding:0 2px">'
        f"{html.escape(word)}</span>"
    )


def highlighted_text_html(text: str, explanation: Sequence[WordContribution], element_id: str) -> str:
    """The tweet as sent, its explained words shaded in place; the spaces and any unexplained tail kept as typed.

    The server explains a tweet's first words in order; a word list that does not match the text (a
    server explaining something else) is not trusted: the text is shown plain.
    """
    matches = list(_WORD.finditer(text))
    if [match.group() for match in matches[: len(explanation)]] != [entry.word for entry in explanation]:
        return f'<pre id="{element_id}" class="explained-text" style="{TEXT_STYLE}">{html.escape(text)}</pre>'
    strongest = max((abs(entry.contribution) for entry in explanation), default=0.0)
    parts, position = [], 0
    for index, (match, entry) in enumerate(zip(matches, explanation, strict=False)):
        parts.append(html.escape(text[position : match.start()]))
        parts.append(word_html(entry.word, entry.contribution, strongest, f"{element_id}-word-{index}"))
        position = match.end()
    parts.append(html.escape(text[position:]))
    body = "".join(parts)
    return f'<pre id="{element_id}" class="explained-text" style="{TEXT_STYLE};line-height:1.7">{body}</pre>'


def legend_html() -> str:
    """What the shading means, in a support lead's words."""
    towards = f'<span class="{TOWARDS}" style="background:{shade(1.0, 1.0)};padding:0 4px">word</span>'
    against = f'<span class="{AGAINST}" style="background:{shade(-1.0, 1.0)};padding:0 4px">word</span>'
    return (
        f'<div class="explain-legend" style="font-size:0.85em">{towards} pushed it towards '
        f"<b>negative</b> (a complaint), {against} away from it; the stronger the shade, the stronger the push "
        "(each word left out in turn and the tweet scored again). Hover a word for its number.</div>"
    )


def top_words_html(prediction: Prediction, element_id: str) -> str:
    """The words that most pushed the served label, strongest first: what a wrong prediction is blamed on."""
    words = prediction.top_words()
    # Spans, not <b>: a tweet's word "bold" must never become a bold element a check could mistake for markup.
    shown = [f'<span class="top-word" style="font-weight:bold">{html.escape(word)}</span>' for word in words]
    label = html.escape(prediction.label)
    return f'<div id="{element_id}">Words that most pushed it to <i>{label}</i>: {", ".join(shown) or "none"}</div>'


def explanation_html(text: str, prediction: Prediction, element_id: str) -> str:
    """A scored tweet's highlighted text and its top words (the prediction must carry an explanation)."""
    explanation = prediction.explanation or ()
    return highlighted_text_html(text, explanation, element_id) + top_words_html(prediction, f"{element_id}-top")
