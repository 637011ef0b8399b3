"""The shared renderer of explained words (dashboard/highlight.py): direction, strength, and escaping."""

from __future__ import annotations

import re

from dashboard.client import Prediction, WordContribution
from dashboard.highlight import AGAINST, NEUTRAL, TOWARDS, explanation_html, highlighted_text_html, shade

MODEL = "baseline:0123456789abcdef0123456789abcdef"


def words(*pairs: tuple[str, float]) -> tuple[WordContribution, ...]:
    return tuple(WordContribution(word, contribution) for word, contribution in pairs)


def spans(rendered: str) -> list[tuple[str, str, str]]:
    """(id, class, shown word) of every explained word, in page order."""
    pattern = r'<span id="([^"]+)" class="explained-word ([^"]+)"[^>]*>([^<]*)</span>'
    return re.findall(pattern, rendered)


def test_each_word_is_marked_with_its_direction_in_text_order():
    rendered = highlighted_text_html(
        "lost my bag  thanks", words(("lost", 0.3), ("my", 0.001), ("bag", 0.1), ("thanks", -0.2)), "t"
    )
    assert spans(rendered) == [
        ("t-word-0", TOWARDS, "lost"),
        ("t-word-1", NEUTRAL, "my"),
        ("t-word-2", TOWARDS, "bag"),
        ("t-word-3", AGAINST, "thanks"),
    ]
    assert "</span>  <span" in rendered  # the spaces as typed


def test_the_shade_grows_with_the_push_and_the_strongest_is_the_most_opaque():
    assert shade(0.3, 0.3) == "rgba(198,40,40,0.75)"  # charts.NEGATIVE_COLOR, full strength
    assert shade(-0.3, 0.3) == "rgba(46,125,50,0.75)"  # charts.NOT_NEGATIVE_COLOR
    assert shade(0.1, 0.3) == "rgba(198,40,40,0.25)"
    assert shade(0.0001, 0.3) == "transparent"


def test_a_tweet_with_markup_shows_literally():
    text = '<script>alert("x")</script> & <b>bold</b>'
    explanation = words(('<script>alert("x")</script>', 0.2), ("&", 0.0), ("<b>bold</b>", -0.1))
    rendered = explanation_html(text, Prediction("negative", 0.9, 0.5, MODEL, explanation=explanation), "t")
    assert "<script>" not in rendered and "<b>bold" not in rendered
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in rendered
    assert [word for _, _, word in spans(rendered)] == [
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;",
        "&amp;",
        "&lt;b&gt;bold&lt;/b&gt;",
    ]
    # the top words are the tweet's own words too: escaped
    assert 'id="t-top"' in rendered and '"font-weight:bold">&lt;script&gt;' in rendered


def test_words_past_the_explained_ones_are_shown_plain():
    rendered = highlighted_text_html("one two three", words(("one", 0.1), ("two", 0.2)), "t")
    assert [word for _, _, word in spans(rendered)] == ["one", "two"]
    assert rendered.endswith("</span> three</pre>")


def test_an_explanation_of_other_words_is_not_trusted_and_the_text_is_shown_plain():
    rendered = highlighted_text_html("lost my <bag>", words(("found", 0.1)), "t")
    assert spans(rendered) == []
    assert "lost my &lt;bag&gt;</pre>" in rendered


def test_the_top_words_are_those_that_pushed_the_served_label():
    explanation = words(("great", -0.4), ("delay", 0.2), ("crew", -0.1))
    rendered = explanation_html(
        "great delay crew", Prediction("not_negative", 0.2, 0.5, MODEL, explanation=explanation), "t"
    )
    assert 'id="t-top">Words that most pushed it to <i>not_negative</i>: ' in rendered
    assert re.findall(r'<span class="top-word"[^>]*>([^<]*)</span>', rendered) == ["great", "crew"]
