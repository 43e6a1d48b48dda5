"""Text preparation: hashtags, mentions, links, emoji, meaningfulness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.text import (
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
