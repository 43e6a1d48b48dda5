"""Text preparation: hashtags, mentions, links, emoji, meaningfulness."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiencefit.features import text as text_module
from audiencefit.features.text import (
    MAX_CHARS,
    extract_hashtags,
    extract_mentions,
    is_meaningful,
    prepare_text,
    segment_words,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#veganrecipes", "vegan recipes"),
        ("#MondayMotivation", "monday motivation"),
        ("#5kRun", "5k run"),
        ("#café", "café"),
        ("#cafésociety", "café society"),
        ("#100DaysOfCode", "100 days of code"),
        ("#skincareroutine", "skin care routine"),
        ("#dogsofinstagram", "dogs of instagram"),
        ("#plant_based", "plant based"),
        ("#東京", "東京"),
        ("#भारत", "भारत"),  # combining vowel signs stay part of the tag
        ("#ประเทศไทย", "ประเทศไทย"),
        ("#Москва", "москва"),
        ("#ootd", "ootd"),  # unsegmentable: kept
        ("#OOTD", "ootd"),  # acronyms are not cut into dictionary words
        ("#bonjour", "bonjour"),  # a foreign word is not cut into junk fragments
        ("#recetasveganas", "recetasveganas"),
    ],
)
def test_hashtags_become_words(raw: str, expected: str) -> None:
    assert prepare_text(raw) == expected


def test_hashtag_words_join_the_caption() -> None:
    assert prepare_text("Sunday long run done! #marathontraining #RunningCommunity") == (
        "Sunday long run done! marathon training running community"
    )


def test_segmentation_prefers_long_known_words() -> None:
    assert segment_words("veganrecipes") == ["vegan", "recipes"]
    assert segment_words("motivation") == ["motivation"]  # a known word is not split
    assert segment_words("qwrtzxcv") == ["qwrtzxcv"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("thanks @Jane_Runs2020 for the tips", "thanks jane runs for the tips"),
        ("shoutout @veganfoodshare!", "shoutout vegan food share!"),
        ("with @anna.smith.", "with anna smith."),
        ("(@nike)", "(nike)"),
        ("@nike", "nike"),
    ],
)
def test_mentions_become_handle_words(raw: str, expected: str) -> None:
    assert prepare_text(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "new video https://youtu.be/abc123?t=5 out now",
        "new video www.example.org/page out now",
        "new video bit.ly/3xYz out now",
        "new video linktr.ee/someone out now",
        "new video (mail me: someone@example.com) out now",
    ],
)
def test_links_and_emails_are_removed(raw: str) -> None:
    prepared = prepare_text(raw)
    assert prepared.startswith("new video")
    assert prepared.endswith("out now")
    for fragment in ("http", "youtu", "example", "bit", "linktr", "someone", "@", "/"):
        assert fragment not in prepared


def test_common_emoji_become_words_others_are_dropped() -> None:
    assert prepare_text("I ❤️ NY 🔥🔥🔥 😂") == "I love NY fire laughing"
    assert prepare_text("🏃🏽‍♀️ morning run 🌱☕") == "running morning run plant coffee"
    assert prepare_text("new drop 🫠🦩🇫🇷 today") == "new drop today"


def test_normalisation_and_punctuation() -> None:
    assert prepare_text("ｆｕｌｌｗｉｄｔｈ   text\n\twith\u200bbreaks") == "fullwidth text with breaks"
    assert prepare_text("Sooooo good!!!!!! ???") == "Soo good! ?"
    assert prepare_text("Tom &amp; Jerry") == "Tom & Jerry"
    assert prepare_text("C# is fun") == "C# is fun"  # not a hashtag


@pytest.mark.parametrize("raw", [None, "", "   \n ", "a", "...", "😂😂😂", "❤️", "🫠", "#1", "!!", "@"])
def test_empty_emoji_only_and_very_short_texts_are_not_meaningful(raw: str | None) -> None:
    prepared = prepare_text(raw)
    assert prepared == ""
    assert not is_meaningful(prepared)


def test_is_meaningful_counts_letters() -> None:
    assert is_meaningful("ok")
    assert is_meaningful("東京")
    assert not is_meaningful("a 1 2 3 !")
    assert not is_meaningful("")


def test_long_texts_are_truncated_at_a_word_boundary() -> None:
    prepared = prepare_text("word " * 1000)
    assert 0 < len(prepared) <= MAX_CHARS
    assert prepared.endswith("word")


def test_extract_hashtags() -> None:
    text = "Love #Vegan #veganRecipes #東京 #भारत x#no C# #café. #5kRun https://x.com/#top &#39; #Vegan"
    assert extract_hashtags(text) == ["vegan", "veganrecipes", "東京", "भारत", "café", "5krun", "vegan"]
    assert extract_hashtags(None) == []


def test_extract_mentions() -> None:
    text = "hi @Jane_Doe. and @nike, mail jane@example.com, @José @bob.smith @..."
    assert extract_mentions(text) == ["jane_doe", "nike", "josé", "bob.smith"]
    assert extract_mentions("") == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_prepare_text_never_fails_and_returns_meaningful_or_empty(raw: str) -> None:
    prepared = prepare_text(raw)
    assert len(prepared) <= MAX_CHARS
    assert prepared == "" or is_meaningful(prepared)
    assert prepared == prepared.strip()


# ---------------------------------------------------------------------------------------------------------------
# The fast paths of prepare_text against the plain definitions they replace (every step must give the same text:
# the embedding cache keys on prepared texts).


def _remove_invisible_reference(text: str) -> str:
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cc" or ch == "\u200b":
            out.append(" ")
        elif category in ("Cf", "Co", "Cs", "Cn") and ch not in ("\u200c", "\u200d"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def _replace_tags_reference(pattern: re.Pattern[str], text: str, *, keep_digits: bool) -> str:
    def words_for(match: re.Match[str]) -> str:
        words = " ".join(text_module.tag_words(match.group(1), keep_digits=keep_digits))
        before = match.string[match.start() - 1] if match.start() > 0 else " "
        return words if before.isspace() or before in "([{\"'«“‘¿¡" else f" {words}"

    return pattern.sub(words_for, text)


_TRICKY = st.sampled_from(
    [" ", "  ", "\n", "\t", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2800", "\ue000", "\U000f0000", "\x85",
     "\u0301", "#", "@", ".", "_", "é", "ß", "Σ", "东", "भा", "🔥", "🏃🏽\u200d♀️", "1\ufe0f\u20e3", "°", "✨",
     "#a\u0301#b", "@x\u200d@y", "(#tag)", "word#tag", "a@b.co", "www.x.com", "https://t.co/x", "soooo", "!!!",
     "#veganrecipes", "@Jane_Runs2020", "#MondayMotivation", "aaaa bbbb", "_____"]
)  # fmt: skip
_MESSY = st.lists(st.one_of(_TRICKY, st.text(max_size=6)), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(_MESSY)
def test_invisible_characters_go_exactly_as_a_character_loop_would(text: str) -> None:
    assert text_module._remove_invisible(text) == _remove_invisible_reference(text)


@settings(max_examples=400, deadline=None)
@given(_MESSY)
def test_tags_are_replaced_exactly_as_a_callback_substitution_would(text: str) -> None:
    hashtag, mention = text_module._tag_patterns()
    assert text_module._replace_tags(hashtag, text, keep_digits=True) == _replace_tags_reference(
        hashtag, text, keep_digits=True
    )
    assert text_module._replace_tags(mention, text, keep_digits=False) == _replace_tags_reference(
        mention, text, keep_digits=False
    )


def test_a_tag_right_after_a_tag_ending_in_a_mark_is_glued_as_before() -> None:
    hashtag, _ = text_module._tag_patterns()
    text = "x #a\u0301#bc"
    assert text_module._replace_tags(hashtag, text, keep_digits=True) == _replace_tags_reference(
        hashtag, text, keep_digits=True
    )


@settings(max_examples=300, deadline=None)
@given(_MESSY)
def test_emoji_and_symbols_go_exactly_as_a_character_loop_would(text: str) -> None:
    def reference(value: str) -> str:
        value = text_module._EMOJI_RUN_RE.sub(lambda m: text_module._emoji_run_words(m.group(0))[0], value)
        value = "".join(" " if unicodedata.category(ch) == "So" and ch != "°" else ch for ch in value)
        return value.replace("\ufe0f", "").replace("\ufe0e", "").replace("\u20e3", "")

    if "\u20e3" in text:
        return  # keycaps are rewritten first; covered by the prepare_text cases above
    assert text_module._replace_emoji(text)[0] == reference(text)


@settings(max_examples=300, deadline=None)
@given(_MESSY)
def test_elongations_and_whitespace_are_cut_as_by_the_plain_regexes(text: str) -> None:
    expected = re.sub(r"\s+", " ", text_module._ELONGATED_RE.sub(r"\1\1", text)).strip()
    collapsed = " ".join(text.split())
    fast = (
        text_module._ELONGATED_RE.sub(r"\1\1", collapsed) if text_module._FOUR_SAME_RE.search(collapsed) else collapsed
    )
    assert fast == expected
    assert text_module._has_letters(text, 2) == (len(text_module._LETTER_RE.findall(text)) >= 2)


def test_cleared_caches_give_the_same_preparation() -> None:
    caption = "Day 3 of #MarathonTraining 🏃🏽‍♀️🔥🔥 with @Jane_Runs2020!!!\n.\n.\n#runnersofinstagram #longrun"
    first = prepare_text(caption)
    text_module.clear_text_caches()
    assert (
        prepare_text(caption)
        == first
        == ("Day 3 of marathon training running fire with jane runs! . . runners of instagram long run")
    )
