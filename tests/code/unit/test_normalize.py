"""Each normalisation rule pinned on real tweets."""

import emoji
import pytest

from pyfunc.normalize import (
    NUMBER_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    VARIANTS,
    clean,
    normalize,
    normalize_batch,
    surface_features,
)


def test_mentions_and_urls_become_placeholders():
    text = "@united my bag is lost http://t.co/abc123 see www.united.com/help"
    assert clean(text) == f"{USER_TOKEN} my bag is lost {URL_TOKEN} see {URL_TOKEN}"


def test_html_entities_are_decoded():
    assert clean("delays &amp; lost bags &lt;3") == "delays & lost bags xxsmile"


def test_hashtags_keep_their_words_and_split_camel_case():
    assert clean("#NeverAgain #fail") == "never again fail"


def test_elongated_words_and_repeated_punctuation_are_shortened():
    assert clean("Soooooo baaaad!!!!!") == "soo baad!"


def test_emoticons_map_to_tokens():
    assert clean("thanks :) but :( and :/") == "thanks xxsmile but xxsad and xxannoyed"


def test_emoji_map_to_named_tokens():
    assert clean("flight cancelled 😡") == "flight cancelled emoji_enraged_face"
    assert clean("👍🏽 great").startswith("emoji_thumbs_up")


def test_only_texts_with_a_character_beyond_ascii_are_scanned_for_emoji():
    """`clean` skips emoji's character-by-character scan for ASCII texts: exact only while no emoji,
    keycaps and flags included, is spelled in ASCII alone, which every emoji the package knows is checked for."""
    spelled_in_ascii = [code for code in emoji.EMOJI_DATA if code.isascii()]
    assert spelled_in_ascii == []
    keycap = "#\ufe0f\u20e3"  # '#' + VS16 + combining keycap: the emoji starts with an ASCII character
    assert clean(f"press {keycap} now") == "press emoji_keycap now"
    assert surface_features(["no emoji here :(", f"press {keycap}"])["has_emoji"] == [0.0, 1.0]


def test_numbers_become_a_token():
    assert clean("delayed 3 hours on flight 1234") == f"delayed {NUMBER_TOKEN} hours on flight {NUMBER_TOKEN}"


def test_whitespace_is_collapsed_and_text_lowercased():
    assert clean("  WORST \n\t service  ") == "worst service"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    ("tweet", "negation"),
    [
        ("@AmericanAir this is not acceptable", "not"),
        ("I will never fly with you again", "never"),
        ("don't bother calling their support", "don't"),
        ("no one answered for hours", "no"),
        ("the crew wasn't helpful", "wasn't"),
        ("nothing works on this app", "nothing"),
    ],
)
def test_negations_survive_every_variant(variant, tweet, negation):
    assert negation in normalize(tweet, variant).split()


def test_stem_variant_reduces_inflections():
    assert normalize("waiting cancelled flights", "stem") == "wait cancel flight"


def test_lemma_variant_uses_dictionary_forms():
    assert normalize("bags were lost, flights cancelled", "lemma") == "bag be lose flight cancel"


def test_variants_keep_placeholders_and_emoji_tokens():
    for variant in VARIANTS:
        words = normalize("@delta 😡 http://x.co :(", variant).split()
        assert {USER_TOKEN, URL_TOKEN, "emoji_enraged_face", "xxsad"} <= set(words)


def test_any_script_is_accepted():
    assert "東京" in normalize("東京行きの便が遅れた", "none")
    assert normalize("рейс задержан", "stem")


def test_unknown_variant_names_the_valid_choices():
    with pytest.raises(ValueError, match="none, stem, lemma"):
        normalize("text", "snowball")
    with pytest.raises(ValueError, match="valid choices"):
        normalize_batch(["text"], "lemmas")
