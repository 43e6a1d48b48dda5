"""Turns the latent story into text: handles, bios, captions, brand and segment descriptions.

This is the only part of the world built in a Python loop, one string at a time, so it draws its randomness from
a buffer of numpy uniforms (:class:`Picker`) instead of calling the generator per choice.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from audiencefit.features.synthetic.locale import (
    BOT_BIOS,
    BOT_HANDLE_WORDS,
    CAPTIONS,
    COUNTRIES,
    CREATOR_BIOS,
    FIRST_NAMES,
    FOLLOWER_BITS,
    LIFE_BITS,
    LOCAL_HASHTAGS,
    STORY_LINES,
)
from audiencefit.features.synthetic.topics import (
    FEELINGS,
    GENERIC_EMOJIS,
    GENERIC_HASHTAGS,
    GENERIC_NOUNS,
    GENERIC_PHRASES,
    TIKTOK_HASHTAGS,
    TIMES,
    TOPIC_INDEX,
    TOPICS,
    WEEKDAYS,
    YOUTUBE_HASHTAGS,
    Topic,
)

T = TypeVar("T")


class Picker:
    """Uniform draws from a numpy generator, buffered so per-string choices stay cheap and deterministic."""

    def __init__(self, rng: np.random.Generator, buffer: int = 1 << 16) -> None:
        self._rng = rng
        self._size = buffer
        self._buf: list[float] = []
        self._i = 0

    def u(self) -> float:
        """A uniform draw in [0, 1)."""
        if self._i >= len(self._buf):
            self._buf = self._rng.random(self._size).tolist()
            self._i = 0
        value = self._buf[self._i]
        self._i += 1
        return value

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.u() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def between(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + int(self.u() * (hi - lo + 1))


_RELATED: dict[int, tuple[Topic, ...]] = {t.id: tuple(TOPICS[TOPIC_INDEX[r]] for r in t.related) for t in TOPICS}
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lower-case ASCII letters and digits only: 'Rise & Loaf' -> 'riseloaf'."""
    return _NON_ALNUM.sub("", text.lower().encode("ascii", "ignore").decode())


def _noun(p: Picker, topic: Topic) -> str:
    r = p.u()
    if r < 0.8:
        return p.pick(topic.nouns)
    if r < 0.92 and topic.related:
        return p.pick(p.pick(_RELATED[topic.id]).nouns)
    return p.pick(GENERIC_NOUNS)


def _emoji(p: Picker, topic: Topic) -> str:
    return p.pick(topic.emojis) if p.chance(0.6) else p.pick(GENERIC_EMOJIS)


def _city(p: Picker, country: int) -> str:
    return p.pick(COUNTRIES[country].cities)


_Ctx = tuple[Picker, Topic, int]
_FILL: dict[str, Callable[[_Ctx], str]] = {
    "n": lambda c: _noun(c[0], c[1]),
    "n2": lambda c: _noun(c[0], c[1]),
    "n3": lambda c: _noun(c[0], c[1]),
    "v": lambda c: c[0].pick(c[1].verbs),
    "e": lambda c: _emoji(c[0], c[1]),
    "g": lambda c: c[0].pick(GENERIC_PHRASES),
    "feel": lambda c: c[0].pick(FEELINGS),
    "time": lambda c: c[0].pick(TIMES),
    "day": lambda c: c[0].pick(WEEKDAYS),
    "gear": lambda c: c[0].pick(c[1].gear),
    "num": lambda c: str(c[0].between(2, 30)),
    "city": lambda c: _city(c[0], c[2]),
    "role": lambda c: c[0].pick(c[1].roles),
    "life": lambda c: c[0].pick(LIFE_BITS),
}


def _compile(templates: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Pair each template with the placeholders it uses, so rendering fills only those."""
    return tuple(
        (tpl, tuple(dict.fromkeys(field for _, field, _, _ in string.Formatter().parse(tpl) if field)))
        for tpl in templates
    )


def _render(p: Picker, templates: tuple[tuple[str, tuple[str, ...]], ...], topic: Topic, country: int) -> str:
    tpl, fields = p.pick(templates)
    ctx = (p, topic, country)
    return tpl.format_map({f: _FILL[f](ctx) for f in fields})


_EN_CAPTIONS = _compile(
    (
        "{time} {v} session done {e} {feel}",
        "new {n} day! which one would you pick, {n} or {n2}? {e}",
        "3 things I learned about {n} this year 👇",
        "can't stop thinking about this {n} {e}{e}",
        "{v} + {n} = my kind of {day} {e}",
        "POV: you finally tried {n} {e}",
        "honest review: {gear} after 30 days. {feel}",
        "my {n} routine, step by step (save this for later) {e}",
        "{g}. also, {n}. {e}",
        "who else is {v} this weekend? drop a {e} below",
        "tiny wins: {n} ✅ {n2} ✅ {g} ✅",
        "little reminder that {n} doesn't have to be perfect {e}",
        "rate my {n} 1-10 {e}",
        "throwback to that {n} in {city} {e}",
        "ok but why is nobody talking about {n}??",
        "{v} in the rain today because {n} waits for no one 🌧️",
        "{n} update: {feel} {e}",
        "Day {num} of {v} every day. {feel}",
        "the {n} I didn't know I needed {e}",
        "{g} {e} {n} and {n2} kind of {day}",
        "Sharing my favourite {n} tips, which one are you trying first? {e}",
        "Unpopular opinion: {n} is overrated. Change my mind {e}",
        "Been {v} for {num} weeks now and {feel}",
        "{n} > everything else {e}",
        "Full {n} breakdown is up! Let me know what you think {e}",
        "{city} {day}s are for {n} {e}",
        "Asked you what you wanted to see and it was {n}, so here we go {e}",
    )
)
_TIKTOK_CAPTIONS = _compile(
    (
        "wait for it... {e}",
        "{n} hack you need {e}",
        "this {n} trick though 😳",
        "replying to comments: yes, the {n} again {e}",
        "{n} check ✅ {e}",
        "pov: {v} at {num}am {e}",
    )
)
_YOUTUBE_TITLES = _compile(
    (
        "{n}: what I wish I knew before starting | {v} vlog",
        "I tried {n} for 30 days (honest results)",
        "{n} vs {n2}: which is worth it?",
        "My {day} {n} routine 2026",
        "Beginner's guide to {n} ({num} tips)",
        "{v} vlog #{num}: {n} and {n2}",
        "Is {gear} worth the hype?",
    )
)
_SPONSORED = _compile(
    (
        "Loving my new {gear} {e}",
        "My {n} essentials, with a little help {e}",
        "Been using this for a few weeks now and {feel}",
        "{n} just got easier {e}",
        "Giveaway time! 🎁 Follow + tag a friend who needs more {n}",
        "My honest take after {num} days. {feel}",
    )
)
_LOCAL_AD = {"de": "#werbung", "es": "#publi", "pt": "#publi", "fr": "#partenariat", "it": "#adv", "id": "#iklan"}
_LOCAL_CAPTIONS = {lang: _compile(t) for lang, t in CAPTIONS.items()}
_LOCAL_BIOS = {lang: _compile(t) for lang, t in CREATOR_BIOS.items()}
_LOCAL_FOLLOWER = {lang: _compile(t) for lang, t in FOLLOWER_BITS.items()}
_EN_BIOS = _compile(
    (
        "{role} | {n} & {n2} | 📍{city} {e}",
        "{e} {role} sharing {n} tips\n📍{city}",
        "just a {role} who loves {n} {e} • {life}",
        "{role} ✨ {n} • {n2} • {n3}\nDM for collabs 📩",
        "{role} based in {city}. {n}, {n2} and a lot of coffee.",
        "{n} | {n2} | {life}\n👇 new video every {day}",
        "helping you with {n} {e} {role}",
        "{role} • {life} • {city}",
        "{n} & {n2} {e}",
    )
)


# ------------------------------------------------------------------------------------------------ captions
#
# Real captions are not one templated line: on a public Instagram sample they averaged ~320 characters with a
# long tail past 1,000, a body of one to many sentences (line breaks, emoji runs, numbered lists, calls to
# action), mentions, a block of 5–30 hashtags (often after a separator line of dots or invisible characters) and
# code-mixed languages. A caption here is built the same way: a first line from the topic templates, then a
# creator-specific number of further sentences (topic lines, generic story lines, lists), then mentions, links
# and the hashtag block. How long, how hashtag-heavy and how emoji-heavy a creator writes is a per-creator
# :class:`CaptionStyle`, so a feature pipeline sees verbose and terse accounts side by side, as in a real export.

_STORY = _compile(
    (
        "Not gonna lie, this week has been a lot {e}",
        "Thank you all so much for the love on my last post, I read every single comment {e}",
        "If you've been here for a while you know how much {n} means to me.",
        "Started this whole thing {num} months ago and honestly never looked back.",
        "Swipe to see the before and after ➡️",
        "A few of you asked about the {gear}, so here's my honest opinion: {feel}.",
        "Some days are harder than others and that's ok.",
        "Reminder: progress over perfection, always {e}",
        "I used to think {n} was only for other people. It isn't.",
        "{city}, you were a dream {e}",
        "Coffee first, then {n} ☕",
        "Can't believe it's already {day} again!",
        "Little life update: we moved, I got sick, and {n} kept me sane through all of it.",
        "Let me know in the comments what you want to see next 👇",
        "Huge thanks to everyone who showed up on {day} {e}",
        "This is your sign to try {n} this week.",
        "Lowkey proud of this one.",
        "The short version: {n}, {n2} and a lot of patience.",
        "It took me {num} tries to get this right, so don't give up after the first one {e}",
        "Being consistent is the hardest part, not the {n} itself.",
        "Who else needs a break from the noise? {e}",
        "Wearing my favourite {gear} again because why not.",
        "Honestly, {feel}.",
        "{g}.",
        "Back in {city} for a few days and already planning the next {n}.",
        "Nobody tells you how much {v} changes your whole week.",
        "PS: the {n} is from last {day}, I'm just slow at posting 😅",
        "What's your go-to {n}? Genuinely curious.",
        "Posting this for the {num} people who asked 🙈",
        "{time} was all about {n}.",
    )
)
_LIST_LEADS = _compile(
    (
        "Here's what worked for me:",
        "My {num} favourite things this month:",
        "What I packed:",
        "Quick tips if you're starting out:",
        "The plan for this week:",
    )
)
_LIST_ITEMS = _compile(("{n}", "{n} {e}", "{v} every {day}", "{gear}", "more {n2}", "{g}"))
_CTA = _compile(
    (
        "Save this for later 📌",
        "Tag someone who needs this 👇",
        "Share with a friend who loves {n} {e}",
        "Follow for more {n} tips {e}",
        "Comment '{n}' and I'll send you the details",
        "Link in bio 🔗",
        "Questions? Drop them below 👇",
        "Double tap if you agree ❤️",
    )
)
# Hashtag blocks on Instagram often sit below a column of dots, bullets or invisible U+2800 lines.
_TAG_SEPARATORS = ("\n\n", "\n\n", "\n.\n.\n.\n", "\n•\n•\n•\n", "\n\u2800\n\u2800\n\u2800\n", "\n\n—\n", " ")
_FEED_HASHTAGS = (
    "instagood", "photooftheday", "instadaily", "picoftheday", "explorepage", "reelsinstagram", "trending",
    "aesthetic", "inspiration", "smallcreator", "contentcreator", "microinfluencer", "instamood", "nofilter",
    "followme", "likeforlikes", "reelitfeelit", "viralreels", "dailyinspo", "goodmorning",
)  # fmt: skip
_NOUN_TAG = re.compile(r"[^\w]+")
_LOCAL_STORY = {lang: _compile(t) for lang, t in STORY_LINES.items()}


@dataclass(frozen=True)
class CaptionStyle:
    """How one creator writes captions: how long, how many hashtags, emoji, line breaks, language mixing."""

    sentences: float  # mean number of body sentences after the first (exponentially distributed per caption)
    tag_share: float  # share of captions that end with a hashtag block
    tags: int  # typical size of that block
    emoji: float  # chance of an emoji run after a sentence
    breaks: float  # chance that a sentence starts on a new line
    mix: float  # chance that a body sentence is in the creator's other language (code-mixing)
    lists: float  # chance of a numbered or bulleted list in a longer caption


def caption_style(p: Picker) -> CaptionStyle:
    """Draw one creator's caption habits: most write one to three sentences, a few write essays."""
    # Lognormal verbosity: median ~3 further sentences, one creator in ten averages ten or more.
    verbosity = math.exp(math.log(2.8) + 1.0 * _normal(p))
    return CaptionStyle(
        sentences=min(verbosity, 20.0),
        tag_share=0.35 + 0.65 * p.u(),
        tags=p.between(5, 30),
        emoji=0.05 + 0.4 * p.u(),
        breaks=p.u(),
        mix=0.05 + 0.3 * p.u(),
        lists=0.3 * p.u(),
    )


def _normal(p: Picker) -> float:
    """A standard normal draw (Box–Muller) from the picker's uniforms."""
    return math.sqrt(-2.0 * math.log(1.0 - p.u())) * math.cos(2.0 * math.pi * p.u())


_DEFAULT_STYLE = CaptionStyle(sentences=2.8, tag_share=0.8, tags=8, emoji=0.3, breaks=0.5, mix=0.15, lists=0.1)


def _emoji_run(p: Picker, topic: Topic) -> str:
    """Two to six emoji; sometimes one emoji repeated (🔥🔥🔥)."""
    if p.chance(0.3):
        return _emoji(p, topic) * p.between(2, 4)
    return "".join(_emoji(p, topic) for _ in range(p.between(2, 6)))


def _hashtags(
    p: Picker, topic: Topic, platform: str, *, count: int | None = None, country: int = 0, language: str = "en"
) -> list[str]:
    """A hashtag block: mostly the topic's tags and its nouns run together, some related, feed-wide and local tags."""
    if count is None:
        if platform == "tiktok":
            count = p.between(3, 6)
        elif platform == "youtube":
            count = p.between(0, 3)
        else:
            count = 0 if p.chance(0.2) else p.between(1, 12)
    tags: list[str] = []
    if platform == "tiktok" and p.chance(0.6):
        tags.append(p.pick(TIKTOK_HASHTAGS))
    if platform == "youtube" and p.chance(0.3):
        tags.append(p.pick(YOUTUBE_HASHTAGS))
    local = LOCAL_HASHTAGS.get(language)
    for _ in range(count):
        r = p.u()
        if r < 0.45:
            tags.append(p.pick(topic.hashtags))
        elif r < 0.6:
            tags.append(_NOUN_TAG.sub("", p.pick(topic.nouns).lower()))
        elif r < 0.68 and topic.related:
            tags.append(p.pick(p.pick(_RELATED[topic.id]).hashtags))
        elif r < 0.78:
            tags.append(p.pick(GENERIC_HASHTAGS))
        elif r < 0.9:
            tags.append(p.pick(_FEED_HASHTAGS))
        elif r < 0.95 and local:
            tags.append(p.pick(local))
        else:
            tags.append(slug(_city(p, country)) + p.pick(("", "", topic.hashtags[0], "life")))
    out = ["#" + t for t in dict.fromkeys(t for t in tags if t)]
    if len(out) > 2 and p.chance(0.15):  # some creators CamelCase their tags
        out = ["#" + t[1:2].upper() + t[2:] for t in out]
    return out


def _sentence(p: Picker, *, topic: Topic, lang: str | None, platform: str, country: int, first: bool) -> str:
    """One body sentence: the topic templates of the caption's language, or (later sentences) a story line."""
    if lang is not None:
        if first or p.chance(0.6):
            return _render(p, _LOCAL_CAPTIONS[lang], topic, country)
        return _render(p, _LOCAL_STORY[lang], topic, country)
    if first:
        if platform == "youtube" and p.chance(0.6):
            return _render(p, _YOUTUBE_TITLES, topic, country)
        if platform == "tiktok" and p.chance(0.4):
            return _render(p, _TIKTOK_CAPTIONS, topic, country)
        return _render(p, _EN_CAPTIONS, topic, country)
    return _render(p, _EN_CAPTIONS if p.chance(0.45) else _STORY, topic, country)


def _body(
    p: Picker,
    *,
    topic: Topic,
    lang: str | None,
    mix_lang: str | None,
    style: CaptionStyle,
    platform: str,
    country: int,
    sponsored: bool,
) -> str:
    """The caption text before mentions and hashtags: one or more sentences, line breaks, emoji runs, lists."""
    if sponsored and lang is None and p.chance(0.6):
        first = _render(p, _SPONSORED, topic, country)
    else:
        first = _sentence(p, topic=topic, lang=lang, platform=platform, country=country, first=True)
    r = p.u()
    if r < 0.3:
        first = first.lower()
    elif r < 0.55:
        first = first[:1].upper() + first[1:]
    out = [first]
    mean = style.sentences * {"tiktok": 0.6, "youtube": 0.4}.get(platform, 1.0)
    extra = int(-math.log(1.0 - p.u()) * mean)  # exponential per caption: the long tail of essays
    for i in range(min(extra, 40)):
        if i > 0 and i == extra // 2 and p.chance(style.lists):
            items = [_render(p, _LIST_ITEMS, topic, country) for _ in range(p.between(3, 6))]
            bullet = p.pick(("{i}. ", "• ", "- ", "✔️ ", "{i}) "))
            lines = [bullet.format(i=k + 1) + item for k, item in enumerate(items)]
            out.append("\n" + _render(p, _LIST_LEADS, topic, country) + "\n" + "\n".join(lines))
            continue
        sentence_lang = lang
        if mix_lang is not None and p.chance(style.mix):  # code-mixing: English in a local caption, or vice versa
            sentence_lang = mix_lang if lang is None else None
        text = _sentence(p, topic=topic, lang=sentence_lang, platform=platform, country=country, first=False)
        if p.chance(style.emoji):
            text += " " + _emoji_run(p, topic)
        out.append(("\n\n" if p.chance(0.3) else "\n") + text if p.chance(style.breaks) else " " + text)
    if extra > 0 and p.chance(0.35):
        out.append("\n\n" + _render(p, _CTA, topic, country))
    elif p.chance(style.emoji / 2):
        out.append(" " + _emoji_run(p, topic))
    return "".join(out)


def caption(
    p: Picker,
    *,
    topic: Topic,
    kind: int,
    local_lang: str | None,
    platform: str,
    country: int,
    handle: str,
    sponsored: bool,
    brand_handle: str | None,
    brand_tag: str | None,
    friend: str | None,
    language: str | None = None,
    style: CaptionStyle | None = None,
) -> str | None:
    """One post caption. ``kind``: 0 text, 1 empty, 2 emoji only, 3 hashtags only.

    ``local_lang`` is the caption's language when it is not English; ``language`` the creator's own language
    (its phrase bank, when it has one, is mixed into English captions and English into local ones); ``style`` the
    creator's caption habits (:func:`caption_style`).
    """
    style = style or _DEFAULT_STYLE
    tag_language = local_lang or language or "en"
    if kind == 1:
        return None if p.chance(0.6) else ""
    if kind == 2:
        return _emoji_run(p, topic) if p.chance(0.5) else "".join(_emoji(p, topic) for _ in range(p.between(1, 4)))
    if kind == 3:
        only = style.tags if platform == "instagram" else p.between(3, 8)
        tags = _hashtags(p, topic, platform, count=only, country=country, language=tag_language)
        return " ".join(tags or ["#" + topic.hashtags[0]])
    mix_lang = local_lang or (language if language in _LOCAL_CAPTIONS else None)
    text = _body(
        p,
        topic=topic,
        lang=local_lang,
        mix_lang=mix_lang,
        style=style,
        platform=platform,
        country=country,
        sponsored=sponsored,
    )
    parts = [text]
    if brand_handle is not None:
        parts.append(
            p.pick(
                (
                    f"thank you @{brand_handle} for sending this 💛",
                    f"in collab with @{brand_handle}",
                    f"@{brand_handle}",
                    f"obsessed with @{brand_handle} lately",
                    f"(not sponsored, I just love @{brand_handle})" if not sponsored else f"w/ @{brand_handle}",
                )
            )
        )
    if sponsored:
        if brand_handle is not None and p.chance(0.35):
            code = slug(handle)[:8].upper() + str(p.pick((10, 15, 20, 25)))
            parts.append(f"use code {code} for {code[-2:]}% off")
        local_ad = _LOCAL_AD.get(local_lang or "", "#ad")
        parts.append(p.pick(("#ad", "#sponsored", "#partner", "Paid partnership", local_ad, local_ad)))
    if friend is not None:
        parts.append(p.pick((f"w/ @{friend}", f"📸 @{friend}", f"thanks @{friend}!", f"cc @{friend}")))
    if p.chance(0.08):
        parts.append(f"📍{_city(p, country)}")
    if p.chance(0.05):
        parts.append(
            p.pick(
                (
                    f"full guide → https://{slug(handle)}.blog/{slug(_noun(p, topic))}",
                    f"https://links.{slug(handle)}.page",
                    "link in bio 🔗",
                )
            )
        )
    count: int | None = None  # TikTok and YouTube: the platform's own small blocks
    if platform == "instagram":
        count = max(1, style.tags + p.between(-3, 3)) if p.chance(style.tag_share) else 0
    tags = _hashtags(p, topic, platform, count=count, country=country, language=tag_language)
    if brand_tag is not None:
        tags.insert(p.between(0, len(tags)), "#" + brand_tag)
    if tags:
        parts.append(p.pick(_TAG_SEPARATORS) + " ".join(tags))
    return " ".join(parts)


def creator_bio(p: Picker, *, topic: Topic, second: Topic, local_lang: str | None, country: int, handle: str) -> str:
    """A creator's profile bio: role, topics, place, sometimes a contact line."""
    if local_lang is not None and p.chance(0.7):
        lines = [_render(p, _LOCAL_BIOS[local_lang], topic, country)]
        if p.chance(0.6):
            lines.append(f"📍{_city(p, country)} | {p.pick(topic.roles)}")
    else:
        lines = [_render(p, _EN_BIOS, topic if p.chance(0.75) else second, country)]
    if p.chance(0.3):
        lines.append(p.pick((f"📩 hello@{slug(handle)}.com", "collabs: DM", "👇 my favourites", "🔗 links below")))
    return "\n".join(lines)


def creator_handle(p: Picker, *, topic: Topic, language: str) -> str:
    """A creator handle such as 'emma.runs', 'thesproutkitchen' or 'chef_mateo22'."""
    name = p.pick(FIRST_NAMES.get(language, FIRST_NAMES["en"]))
    word = slug(p.pick(topic.stems) if p.chance(0.5) else p.pick(topic.nouns).split(" ")[0]) or "life"
    sep = p.pick(("", ".", "_"))
    form = p.between(0, 5)
    if form == 0:
        handle = f"{name}{sep}{word}"
    elif form == 1:
        handle = f"the{word}{name}"
    elif form == 2:
        handle = f"{word}with{name}"
    elif form == 3:
        handle = f"{name}{sep}{word}{p.between(1, 99)}"
    elif form == 4:
        handle = f"{p.pick(('its', 'hey', 'simply', 'daily'))}{name}{sep}{word}"
    else:
        handle = f"{name}{sep}{p.between(1980, 2008)}"
    return handle


def follower_handle(p: Picker, *, bot: bool, language: str, topic: Topic | None) -> str:
    """A follower handle; bots get machine-looking ones."""
    name = p.pick(FIRST_NAMES.get(language, FIRST_NAMES["en"]))
    if bot:
        r = p.u()
        if r < 0.4:
            return f"{name}{p.between(10_000, 99_999_999)}"
        if r < 0.7:
            letters = "".join(p.pick("abcdefghijkmnpqrstuvwxyz") for _ in range(4))
            return f"{p.pick(BOT_HANDLE_WORDS)}_{letters}{p.between(1, 999)}"
        return f"{p.pick(BOT_HANDLE_WORDS)}.{p.pick(BOT_HANDLE_WORDS)}.{p.between(1, 99)}"
    word = slug(p.pick(topic.nouns).split(" ")[0]) if topic is not None and p.chance(0.3) else ""
    digits = str(p.between(1, 9999)) if p.chance(0.55) else ""
    sep = p.pick(("", ".", "_")) if word or digits else ""
    return f"{name}{sep}{word}{digits}"


def follower_bio(
    p: Picker,
    *,
    kind: int,
    has_bio: bool,
    spam: bool,
    interest: Topic | None,
    interest2: Topic | None,
    local_lang: str | None,
    country: int,
) -> str | None:
    """A follower's own bio; ``kind`` 0 real, 1 inactive, 2 bot."""
    if not has_bio:
        return None if p.chance(0.6) else ""
    if kind == 2:
        return p.pick(BOT_BIOS) if spam else p.pick(LIFE_BITS)
    if kind == 1:
        return p.pick((".", "hi", "🙂", p.pick(LIFE_BITS)))
    parts: list[str] = []
    if interest is not None and p.chance(0.7):
        if local_lang is not None and p.chance(0.5):
            parts.append(_render(p, _LOCAL_FOLLOWER[local_lang], interest, max(country, 0)))
        else:
            parts.append(p.pick(interest.fan_bits) if p.chance(0.7) else f"{_noun(p, interest)} lover")
    if interest2 is not None and p.chance(0.5):
        parts.append(p.pick(interest2.fan_bits) if p.chance(0.5) else f"{_noun(p, interest2)} {_emoji(p, interest2)}")
    if p.chance(0.5):
        parts.append(p.pick(LIFE_BITS))
    if country >= 0 and p.chance(0.2):
        parts.append(f"📍{_city(p, country)}")
    if not parts:
        parts.append(p.pick(LIFE_BITS))
    return p.pick((" | ", " • ", "\n", " ✨ ", ". ")).join(parts)


# ----------------------------------------------------------------------------------------- brands, segments

_BRAND_PREFIXES = (
    "Nova",
    "Verde",
    "Lumi",
    "Kora",
    "Bloom",
    "Peak",
    "True",
    "Wild",
    "Urban",
    "Happy",
    "Mira",
    "Oak",
    "Fern",
    "Juno",
    "Atlas",
    "Luna",
    "Brisk",
    "Hale",
    "Kind",
    "Sol",
    "Nord",
    "Aura",
    "Willow",
    "Cedar",
    "Maple",
    "Orbit",
    "Tidal",
    "Ember",
    "Halo",
    "Vela",
    "Good",
    "Little",
    "Bright",
    "Honest",
    "Daily",
)
_TAG_SUFFIXES = ("life", "fam", "moments", "style", "crew", "love", "daily")
# (as a trailing clause, as the subject of a sentence)
DEMOGRAPHICS = (
    (", aged 18-24", "18-24 year olds"),
    (", aged 25-34", "People aged 25-34"),
    (", mostly women", "Women"),
    (", mostly men aged 18-34", "Men aged 18-34"),
    (", aged 30-45", "Adults aged 30-45"),
    (", parents in their thirties", "Parents in their thirties"),
    (", women over 35", "Women over 35"),
    (", students and young professionals", "Students and young professionals"),
)


def brand_name(p: Picker, topic: Topic, taken: set[str]) -> str:
    """An invented brand name such as 'VerdeSprout' or 'Hale Pace Labs', unique within ``taken``."""
    for _ in range(20):
        name = f"{p.pick(_BRAND_PREFIXES)}{p.pick(('', ' '))}{p.pick(topic.stems)}"
        if p.chance(0.3):
            name += p.pick((" Co", " Labs", " & Co", " Goods", " Club"))
        if slug(name) not in taken:
            break
    else:
        name = f"{name} {p.between(2, 999)}"
    taken.add(slug(name))
    return name


def brand_handles(p: Picker, name: str) -> list[str]:
    """The brand's own handles, without '@'."""
    base = slug(name)
    handles = [base]
    if p.chance(0.4):
        handles.append(base + p.pick(("_official", "hq", ".us", "app", ".eu")))
    return handles


def brand_hashtags(p: Picker, name: str) -> list[str]:
    """Branded hashtags, without '#'."""
    base = slug(name)
    tags = [base]
    if p.chance(0.5):
        tags.append(base + p.pick(_TAG_SUFFIXES))
    return tags


def brand_description(p: Picker, name: str, topic: Topic, second: Topic | None, country: int) -> str:
    """What the brand sells, in free text."""
    p1 = p.pick(topic.products)
    p2 = p.pick(second.products) if second is not None and p.chance(0.6) else p1
    while p2 == p1:
        p2 = p.pick(topic.products)
    aud = p.pick(topic.audiences)
    form = p.between(0, 4)
    if form == 0:
        return f"{name} makes {p1} and {p2} for {aud}."
    if form == 1:
        founded = f"Founded in {p.between(2009, 2024)} in {_city(p, country)}."
        return f"{name} is a direct-to-consumer brand selling {p1}. {founded}"
    if form == 2:
        return f"We make {p1} that actually work. Made for {aud}."
    if form == 3:
        return f"{p1[:1].upper()}{p1[1:]}, {p2} and more, designed for {aud}."
    return f"Independent {topic.label} brand: {p1}, {p2}. Ships to {p.between(3, 40)} countries."


def _country_phrase(codes: Sequence[int]) -> str:
    names = [COUNTRIES[c].name for c in codes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def segment_description(
    p: Picker, topic: Topic, second: Topic | None, *, demo: int, countries: Sequence[int], geo_in_text: bool
) -> str:
    """Who a segment targets, paraphrased from topic audiences rather than naming the topic."""
    demo_text, demo_lead = DEMOGRAPHICS[demo] if demo >= 0 else ("", "People")
    geo = f" in {_country_phrase(countries)}" if countries and geo_in_text else ""
    aud = p.pick(topic.audiences)
    Aud = aud[:1].upper() + aud[1:]  # noqa: N806
    if second is None:
        form = p.between(0, 3)
        if form == 0:
            return f"{Aud}{demo_text}{geo}."
        if form == 1:
            return f"People who love {_noun(p, topic)} and {_noun(p, topic)}{demo_text}{geo}."
        if form == 2:
            return f"Anyone into {topic.label}: think {aud}{geo}."
        return f"Our core buyers are {aud}{demo_text}{geo}."
    form = p.between(0, 4)
    if form == 0:
        return f"{Aud}, ideally also into {_noun(p, second)}{demo_text}{geo}."
    if form == 1:
        return f"{Aud}, especially those into {second.label}{geo}."
    if form == 2:
        return f"Our core buyers: {aud}{geo}. Bonus if they care about {_noun(p, second)}."
    if form == 3:
        return f"{Aud} and {p.pick(second.audiences)}{demo_text}{geo}."
    return f"{demo_lead} who care about {topic.label} and {second.label}{geo}."
