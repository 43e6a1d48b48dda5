"""Caption quotes (audiencefit.serving.captions) on captions as real ones are: long, hashtags last, other languages."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiencefit.serving import captions as captions_module
from audiencefit.serving.captions import (
    MIN_SIMILARITY,
    QUOTE_CHARS,
    CaptionStore,
    cut,
    quote,
    recent_captions,
    scan_from,
    stem,
    stems,
    tidy_caption,
)

LONG_PREAMBLE = (
    "Otra semana increíble con todos vosotros 🙌🙌🙌 gracias por estar siempre ahí, de verdad que no me lo creo. "
    "Mañana subo más contenido, contadme en comentarios qué os gustaría ver 💬👇\n.\n.\n.\n"
)


@pytest.mark.parametrize(
    ("a", "b"),
    [("students", "student"), ("studying", "study"), ("studies", "study"), ("meals", "meal"),
     ("universidad", "university"), ("étudiant", "etudiants"), ("Runners", "runner")],
)  # fmt: skip
def test_inflections_share_a_stem(a: str, b: str) -> None:
    assert stem(a) == stem(b)


def test_hashtags_are_split_into_word_stems() -> None:
    assert {"late", "night", "study"} <= stems("#LateNightStudy")
    assert stem("gardens") in stems("#urbangarden")


def test_words_after_the_first_200_characters_are_matched_and_quoted() -> None:
    caption = LONG_PREAMBLE + "#studygram #latenightstudy #mealprep"
    assert len(caption) > QUOTE_CHARS
    store = CaptionStore({"c1": [caption]})
    quotes = store.best("c1", "students who study late and skip meals")
    assert len(quotes) == 1
    assert "#studygram" in quotes[0] and quotes[0].startswith("…")  # shortened around the match
    assert len(quotes[0]) <= QUOTE_CHARS + 2


def test_quote_keeps_short_captions_whole_and_cuts_long_ones_at_words() -> None:
    assert quote("Leg day\n\n#gymlife", frozenset({"gym"})) == "Leg day #gymlife"
    long = "word " * 100 + "#protein shake"
    shortened = quote(long, frozenset({stem("protein")}))
    assert "#protein" in shortened and shortened.startswith("…") and len(shortened) <= QUOTE_CHARS + 2
    head = quote(long, frozenset({"absent"}))
    assert head.startswith("word") and head.endswith("…")


def test_unrelated_captions_are_not_quoted() -> None:
    store = CaptionStore({"c1": ["Sunset over the harbour #travel #sailing"]})
    assert store.best("c1", "students who study late") == []
    assert store.best("unknown", "students who study late") == []


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_vectors_quote_captions_in_other_words_or_languages_and_rank_by_closeness() -> None:
    captions = {
        "c1": ["Estudiando hasta tarde otra vez 😅 #biblioteca", "Paella con la familia", "Noche de exámenes ☕"],
        "c2": ["x"],
    }
    segment = unit([1.0, 0.0, 0.0])
    vectors = np.stack(
        [unit([0.8, 0.6, 0.0]), unit([0.0, 1.0, 0.0]), unit([0.95, 0.0, 0.31]), unit([0.0, 0.0, 1.0])]
    ).astype(np.float16)
    store = CaptionStore(captions, vectors=vectors)
    text = "students who study late"
    assert store.best("c1", text) == []  # no shared word: nothing without the segment's vector
    quoted = store.best("c1", text, 2, segment)
    assert quoted == ["Noche de exámenes ☕", "Estudiando hasta tarde otra vez 😅 #biblioteca"]
    assert store.best("c2", text, 2, segment) == []  # cosine 0 < MIN_SIMILARITY
    assert 0 < MIN_SIMILARITY < 0.8


def test_vectors_must_match_the_captions() -> None:
    with pytest.raises(ValueError, match="2 caption vectors for 3 captions"):
        CaptionStore({"a": ["x", "y"], "b": ["z"]}, vectors=np.zeros((2, 4), dtype=np.float16))


def test_recent_captions_keep_whole_captions_newest_first() -> None:
    long = LONG_PREAMBLE + "#studygram"
    posts = pl.DataFrame(
        {
            "post_id": ["p1", "p2", "p3"],
            "creator_id": ["c1", "c1", "c1"],
            "posted_at": [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 3, 2)],
            "caption": ["old", long, "  "],
        }
    )
    assert recent_captions(posts) == {"c1": [long, "old"]}


def test_too_many_captions_fall_back_to_the_word_match(monkeypatch: pytest.MonkeyPatch, hashing_embedder) -> None:
    from audiencefit.serving import captions as module

    captions = {"c1": ["late night study #studygram", "leg day"], "c2": ["pasta night"]}
    assert module.embed_captions(captions, hashing_embedder, None).shape == (3, hashing_embedder.dim)
    monkeypatch.setattr(module, "MAX_EMBEDDED_CAPTIONS", 2)
    assert module.embed_captions(captions, hashing_embedder, None) is None
    store = CaptionStore(captions, vectors=module.embed_captions(captions, hashing_embedder, None))
    assert not store.embedded
    assert store.best("c1", "students who study", 2, np.ones(hashing_embedder.dim, dtype=np.float32)) == [
        "late night study #studygram"
    ]


@pytest.mark.parametrize(
    ("caption", "tidied"),
    [
        ("Sunday hike!\n.\n.\n.\n#hiking #trail", "Sunday hike! #hiking #trail"),
        ("Vegan cheese  board\n\n•\n•\n•\n\u2800\nrecipe below ⬇️", "Vegan cheese board recipe below ⬇️"),
        ("Love it!!! 😍😍 . . . #x", "Love it!!! 😍😍 #x"),
        ("before - after", "before - after"),  # one mark between words is text
        ("one\n.\ntwo", "one two"),
        (".\n.\n.", ""),
    ],
)
def test_quotes_leave_out_filler_lines_and_runs(caption: str, tidied: str) -> None:
    assert tidy_caption(caption) == tidied
    assert quote(caption, frozenset()) == tidied


def test_a_caption_of_filler_only_is_never_quoted() -> None:
    store = CaptionStore({"c1": [".\n.\n.", "pasta night with friends"]})
    assert store.best("c1", "pasta", 2) == ["pasta night with friends"]


def test_caption_table_keeps_each_creators_captions_in_order() -> None:
    from audiencefit.serving.captions import CaptionTable

    table = CaptionTable.from_flat(pl.DataFrame({"creator_id": ["a", "a", "c"], "caption": ["a1", "a2", "c1"]}))
    same = CaptionTable.from_dict({"a": ["a1", "a2"], "b": [], "c": ["c1"]})
    for t in (same,):
        assert len(t) == 3 and t.n_captions == 3
        assert t.get("a") == ["a1", "a2"] and t.get("b") == [] and t.get("c") == ["c1"] and t.get("zz") == []
        assert t.span("c") == (2, 1) and t.span("b") == (2, 0) and t.span("zz") is None
        assert t.texts() == ["a1", "a2", "c1"] and t.creator_ids() == ["a", "b", "c"]
    # One row per caption: a creator without captions has no row and so no entry.
    assert len(table) == 2 and table.n_captions == 3
    assert table.get("a") == ["a1", "a2"] and table.get("b") == [] and table.get("c") == ["c1"]
    assert table.span("c") == (2, 1) and table.span("b") is None
    assert table.texts() == ["a1", "a2", "c1"] and table.creator_ids() == ["a", "c"]
    with pytest.raises(ValueError, match="do not agree"):
        CaptionTable(["a"], np.array([2], dtype=np.int64), pl.Series(["x"]))


def test_quotes_are_remembered_by_creator_segment_and_vector_and_the_oldest_go_first() -> None:
    captions = {"c1": ["pasta night with friends #pasta", "a new pasta recipe, fresh basil"], "c2": ["pasta again"]}
    vectors = np.eye(3, 4, dtype=np.float16)
    store = CaptionStore(captions, remembered=2, vectors=vectors)
    first = store.best("c1", "pasta lovers", n=1)
    again = store.best("c1", "pasta lovers", n=1)
    assert first == again == ["pasta night with friends #pasta"]
    again.append("changed by the caller")  # the remembered answer is a copy's source, not the list handed out
    assert store.best("c1", "pasta lovers", n=1) == first
    # Another n, another vector: other answers, each remembered on its own (capacity 2: the oldest leaves).
    assert store.best("c1", "pasta lovers", n=2) == [
        "pasta night with friends #pasta",
        "a new pasta recipe, fresh basil",
    ]
    towards_second = np.array([0, 1, 0, 0], dtype=np.float32)
    assert store.best("c1", "fresh basil", n=1, segment_vector=towards_second) == ["a new pasta recipe, fresh basil"]
    assert len(store._quotes) == 2
    assert ("c1", "pasta lovers", 1, b"") not in store._quotes


# ---------------------------------------------------------------------------------------------------------------
# The fast paths of quoting against the plain definitions they replace (a request must get the same quotes).


def _tidy_reference(caption: str) -> str:
    lines = (line.replace("\u2800", " ").split() for line in caption.splitlines())
    marked = [[(t, captions_module._is_filler(t)) for t in line] for line in lines]
    tokens = [pair for line in marked if not all(filler for _, filler in line) for pair in line]
    kept = []
    for i, (token, filler) in enumerate(tokens):
        in_run = filler and ((i > 0 and tokens[i - 1][1]) or (i + 1 < len(tokens) and tokens[i + 1][1]))
        if not in_run:
            kept.append(token)
    return " ".join(kept)


def _cut_reference(text: str, target: frozenset[str], limit: int = QUOTE_CHARS) -> str:
    """:func:`cut` reading every token from the start (no :func:`scan_from`), as it did before."""
    return captions_module.cut_from(text, target, limit, 0)


def _first_hit_reference(text: str, target: frozenset[str]) -> int | None:
    for match in captions_module._TOKEN_RE.finditer(text):
        if captions_module._hits(match.group(), target):
            return match.start()
    return None


# Pieces of hostile captions: words that hit by stem ("Studies" → study, "ÉTUDIANTS" → etudia) or only inside
# another token ("xstudy", "#studygram"), characters that fold to several (ﬁ, ǆ), to nothing (combining marks),
# that lower-case to several (İ) or to ASCII (the Kelvin sign), other scripts, emoji, filler and odd whitespace.
_PIECES = st.sampled_from(
    ["Studies", "studying", "study", "xstudy", "#studygram", "#LateNightStudy", "stud", "ÉTUDIANTS", "étudiant",
     "e\u0301tudiant", "students'", "student’s", "meals", "Meal-prep", "#mealprep", "universidad", "ﬁtness", "ǆungle",
     "İstanbul", "\u212aitchen", "Σπουδές", "ΣΠΟΥΔΑΣ", "учёба", "Студенты", "東京", "大学生", "भारत", "طلاب",
     "ｓｔｕｄｙ", "🔥", "🏃🏽\u200d♀️", "☀️", "1\ufe0f\u20e3", "•", ".", "⠀", "—", "!!!", "_", "#", "'", "’", " ",
     "  ", "\n", "\n.\n", "\t", "\u2028", "\x1c", "\x85", "\u200b", "\u0301", "\ufffd", "a", "x"]
)  # fmt: skip
_CAPTIONS = st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=120).map("".join)
_TARGETS = st.lists(
    st.sampled_from(
        ["study", "studen", "etudia", "meal", "univer", "fitnes", "dzungl", "istanb", "kitche", "σπουδ", "студен",
         "東京", "late", "nigh", "Study", "y", "abc"]
    ),
    max_size=5,
).map(frozenset)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(_CAPTIONS, _TARGETS)
def test_the_search_for_a_quotes_first_match_starts_no_later_than_the_first_hit(
    caption: str, target: frozenset[str]
) -> None:
    for text in (caption, tidy_caption(caption)):
        start = scan_from(text, target)
        hit = _first_hit_reference(text, target)
        assert 0 <= start <= len(text)
        if hit is not None:
            assert start <= hit
        long = text * (1 + QUOTE_CHARS // max(1, len(text)))
        assert cut(long, target) == _cut_reference(long, target)
        assert cut(text, target, limit=20) == _cut_reference(text, target, limit=20)


@pytest.mark.parametrize(
    ("text", "target", "hit"),
    [
        ("", frozenset({"study"}), None),
        ("🔥🔥 ☀️ 🏃🏽\u200d♀️ " * 40, frozenset({"study"}), None),
        ("#a #b #c " * 40 + "#studygram", frozenset({"study"}), 360),
        ("word " * 60 + "xstudy then Studies", frozenset({"study"}), 312),  # "Studies" by its stem, "xstudy" not
        ("mot " * 60 + "ÉTUDIANTS", frozenset({"etudia"}), 240),  # the accent folded in place
        # A combining mark (read from the start) splits a token: "e", "tudiants", then the precomposed word.
        ("mot " * 60 + "e\u0301tudiants étudiants", frozenset({"etudia"}), 251),
        ("слово " * 50 + "Студенты", frozenset({"студен"}), 300),  # a stem outside ASCII: read from the start
        ("\u212a " * 100 + "kitchens", frozenset({"kitche"}), 200),
        ("İ " * 100 + "studies", frozenset({"study"}), 200),
        ("İ" * 100 + " studies " + "word " * 40 + "studies", frozenset({"study"}), 101),  # İ lower-cases to two
        ("ﬁ " * 100 + "fitness", frozenset({"fitnes"}), 200),
    ],
)
def test_the_first_match_of_odd_captions_is_found(text: str, target: frozenset[str], hit: int | None) -> None:
    assert _first_hit_reference(text, target) == hit
    start = scan_from(text, target)
    assert start <= (len(text) if hit is None else hit)
    assert cut(text, target) == _cut_reference(text, target)


def test_a_caption_without_any_needle_is_not_read_and_an_unsure_one_is_read_whole() -> None:
    text = "nothing to see here " * 20
    assert scan_from(text, frozenset({"study"})) == len(text)
    assert scan_from(text, frozenset()) == len(text)
    assert scan_from("a\u0301 " + text + " studies", frozenset({"study"})) == 0  # a combining mark
    assert scan_from(text + " студенты", frozenset({"студен"})) == 0  # a stem outside ASCII
    assert scan_from("x " * 50 + "big studies", frozenset({"study"})) == 104  # from the word's start


@settings(max_examples=600, deadline=None)
@given(_CAPTIONS)
def test_captions_are_tidied_exactly_as_token_by_token(caption: str) -> None:
    assert tidy_caption(caption) == _tidy_reference(caption)


@pytest.mark.parametrize(
    "caption",
    ["", "   ", "🔥", "🔥🔥🔥 ✨", "#a #b #c", "#studygram\n#mealprep", ".\n•\n⠀", "x" * 3000, "• • word • •",
     "Σπουδές ΣΠΟΥΔΑΣ", "东京 大学生", "طلاب الجامعة", "line\u2028.\u2028next", "a\x1c.\x1cb", "_ _ word", "-\n-",
     "The students love their studies, and what about you?"],
)  # fmt: skip
def test_odd_captions_are_tidied_and_stemmed_as_the_plain_definitions(caption: str) -> None:
    assert tidy_caption(caption) == _tidy_reference(caption)
    assert captions_module._sorted_stems(caption) == tuple(sorted(stems(caption)))


@settings(max_examples=200, deadline=None)
@given(_CAPTIONS)
def test_caption_stems_are_the_sorted_stems_of_the_words(caption: str) -> None:
    assert captions_module._sorted_stems(caption) == tuple(sorted(stems(caption)))


def test_a_store_without_caption_vectors_quotes_alike_whatever_the_segment_vector() -> None:
    store = CaptionStore({"c1": ["pasta night with friends #pasta", "a new pasta recipe, fresh basil"]})
    first = store.best("c1", "pasta lovers", 2, unit([1.0, 0.0, 0.0]))
    assert store.best("c1", "pasta lovers", 2, unit([0.0, 1.0, 0.0])) == first == store.best("c1", "pasta lovers")
    assert len(store._quotes) == 1 and ("c1", "pasta lovers", 2, b"") in store._quotes  # remembered once, by no vector


def test_without_vectors_more_shared_stems_rank_first_and_ties_go_to_the_newer_caption() -> None:
    captions = ["pasta tonight", "fresh pasta with basil", "sunset sailing", "basil pasta salad", "pasta"]
    store = CaptionStore({"c1": captions})
    assert store.best("c1", "pasta and basil lovers", n=4) == [
        "fresh pasta with basil",
        "basil pasta salad",
        "pasta tonight",
        "pasta",
    ]
    assert store.best("c1", "pasta and basil lovers", n=1) == ["fresh pasta with basil"]
    assert store.best("c1", "sailing", n=2) == ["sunset sailing"]
