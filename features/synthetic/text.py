"""Turns the latent story into text: handles, bios, captions, brand and segment descriptions.

This is the only part of the world built in a Python loop, one string at a time, so it draws its randomness from
a buffer of numpy uniforms (:class:`Picker`) instead of calling the generator per choice.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from features.synthetic.locale import (
    BOT_BIOS,
    BOT_HANDLE_WORDS,
    CAPTIONS,
    COUNTRIES,
    CREATOR_BIOS,
    FIRST_NAMES,
    FOLLOWER_BITS,
    LIFE_BITS,
)
from features.synthetic.topics import (
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


def _hashtags(p: Picker, topic: Topic, platform: str) -> list[str]:
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
    for _ in range(count):
        r = p.u()
        if r < 0.7:
            tags.append(p.pick(topic.hashtags))
        elif r < 0.8 and topic.related:
            tags.append(p.pick(p.pick(_RELATED[topic.id]).hashtags))
        else:
            tags.append(p.pick(GENERIC_HASHTAGS))
    return ["#" + t for t in dict.fromkeys(tags)]


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
) -> str | None:
    """One post caption. ``kind``: 0 text, 1 empty, 2 emoji only, 3 hashtags only."""
    if kind == 1:
        return None if p.chance(0.6) else ""
    if kind == 2:
        return "".join(_emoji(p, topic) for _ in range(p.between(1, 4)))
    if kind == 3:
        tags = _hashtags(p, topic, "instagram") or ["#" + topic.hashtags[0]]
        return " ".join(tags)
    if local_lang is not None:
        text = _render(p, _LOCAL_CAPTIONS[local_lang], topic, country)
    elif sponsored and p.chance(0.6):
        text = _render(p, _SPONSORED, topic, country)
    elif platform == "youtube" and p.chance(0.6):
        text = _render(p, _YOUTUBE_TITLES, topic, country)
    elif platform == "tiktok" and p.chance(0.4):
        text = _render(p, _TIKTOK_CAPTIONS, topic, country)
    else:
        text = _render(p, _EN_CAPTIONS, topic, country)
    r = p.u()
    if r < 0.3:
        text = text.lower()
    elif r < 0.55:
        text = text[:1].upper() + text[1:]
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
    tags = _hashtags(p, topic, platform)
    if brand_tag is not None:
        tags.insert(p.between(0, len(tags)), "#" + brand_tag)
    if tags:
        parts.append(p.pick((" ", "\n\n", "\n.\n.\n.\n")) + " ".join(tags))
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
