"""Bio- and caption-like social texts used to fit the hybrid backend's static → MiniLM alignment map.

Deterministic given a seed, and written independently of ``audiencefit.features.synthetic`` on purpose: the map is
fitted here and measured on texts from a generated world, so the benchmark does not grade it on its own training
distribution. No real influencer data: every text is assembled from templates and word lists written here.
The mix mirrors what the pipeline embeds: follower bios (short, keyword-like, emoji and hashtags), captions (a
sentence or three plus hashtags and mentions), some in other languages, a few long ones. Texts go through
``audiencefit.features.text.prepare_text``, as the pipeline's do.

Changing anything here changes the corpus, whose sha256 is part of the hybrid backend's id.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from functools import cache

# niche -> (nouns/activities, hashtags, emoji)
_NICHES: dict[str, tuple[list[str], list[str], list[str]]] = {
    "running": (
        [
            "morning run",
            "long run",
            "interval session",
            "half marathon",
            "trail run",
            "tempo run",
            "5k",
            "race day",
            "new running shoes",
            "recovery jog",
            "hill repeats",
            "parkrun",
        ],
        [
            "#running",
            "#RunnersOfInstagram",
            "#marathontraining",
            "#trailrunning",
            "#5kRun",
            "#runnerslife",
            "#halfmarathon",
            "#runhappy",
        ],
        ["🏃", "🏃🏽‍♀️", "💪", "👟", "🔥", "⏱️"],
    ),
    "fitness": (
        [
            "leg day",
            "gym session",
            "home workout",
            "deadlift PR",
            "HIIT class",
            "core workout",
            "protein shake",
            "push day",
            "mobility routine",
            "kettlebell flow",
        ],
        ["#fitness", "#gymlife", "#fitfam", "#workout", "#MondayMotivation", "#legday", "#fitspo", "#homeworkout"],
        ["💪", "🏋️", "🔥", "💯", "😤"],
    ),
    "yoga": (
        [
            "sunrise yoga",
            "vinyasa flow",
            "breathwork",
            "meditation practice",
            "yin yoga class",
            "retreat in Bali",
            "mindful morning",
            "hip openers",
        ],
        ["#yoga", "#yogaeveryday", "#namaste", "#mindfulness", "#yogainspiration", "#selfcare", "#meditation"],
        ["🧘", "🧘‍♀️", "🌿", "✨", "🙏", "☀️"],
    ),
    "skincare": (
        [
            "night skincare routine",
            "vitamin c serum",
            "new moisturizer",
            "SPF every day",
            "double cleansing",
            "retinol update",
            "hydrating toner",
            "sheet mask night",
            "glass skin routine",
        ],
        [
            "#skincare",
            "#skincareroutine",
            "#glowingskin",
            "#kbeauty",
            "#selfcaresunday",
            "#SkinCareTips",
            "#cleanbeauty",
        ],
        ["✨", "🧴", "💆‍♀️", "🌸", "💕"],
    ),
    "makeup": (
        [
            "everyday makeup look",
            "new eyeshadow palette",
            "red lip",
            "glam for the wedding",
            "no-makeup makeup",
            "brow tutorial",
            "foundation swatches",
            "winged eyeliner",
        ],
        ["#makeup", "#mua", "#makeuptutorial", "#glam", "#beauty", "#motd", "#eyeliner"],
        ["💄", "💋", "✨", "😍", "💅"],
    ),
    "food": (
        [
            "homemade pasta",
            "sourdough bake",
            "sunday brunch",
            "spicy ramen",
            "meal prep",
            "banana bread",
            "street tacos",
            "chocolate cake",
            "family dinner",
            "pizza night",
        ],
        ["#foodie", "#homecooking", "#foodporn", "#recipe", "#brunch", "#instafood", "#yummy", "#foodblogger"],
        ["🍕", "🍝", "😋", "🤤", "🍰", "🥑"],
    ),
    "vegan": (
        [
            "vegan recipes",
            "plant based bowl",
            "tofu scramble",
            "oat milk latte",
            "vegan baking",
            "lentil curry",
            "dairy free cheesecake",
            "meatless monday",
        ],
        ["#vegan", "#veganrecipes", "#plantbased", "#whatveganseat", "#veganfood", "#crueltyfree"],
        ["🌱", "🥑", "🥗", "💚", "🌿"],
    ),
    "travel": (
        [
            "weekend in Lisbon",
            "road trip",
            "hidden beach",
            "sunset in Santorini",
            "backpacking Asia",
            "hotel review",
            "mountain hut",
            "city break",
            "island hopping",
        ],
        ["#travel", "#wanderlust", "#travelgram", "#roadtrip", "#beachlife", "#explore", "#TravelTuesday"],
        ["✈️", "🌍", "🏖️", "🌊", "🏔️", "📸"],
    ),
    "gaming": (
        [
            "ranked grind",
            "new patch notes",
            "stream tonight",
            "speedrun attempt",
            "retro console haul",
            "co-op campaign",
            "esports finals",
            "indie game review",
        ],
        ["#gaming", "#gamer", "#twitch", "#esports", "#ps5", "#pcgaming", "#nintendo", "#streamer"],
        ["🎮", "🕹️", "👾", "🔥", "😂"],
    ),
    "parenting": (
        [
            "toddler tantrums",
            "school run",
            "bedtime routine",
            "baby's first steps",
            "family picnic",
            "mom life",
            "homeschool day",
            "newborn sleep tips",
        ],
        ["#momlife", "#parenting", "#toddlerlife", "#dadlife", "#familytime", "#motherhood"],
        ["👶", "❤️", "😴", "🧸", "😂"],
    ),
    "fashion": (
        [
            "outfit of the day",
            "thrifted jacket",
            "capsule wardrobe",
            "summer dress",
            "sneaker drop",
            "vintage haul",
            "street style",
            "linen set",
        ],
        ["#ootd", "#fashion", "#streetstyle", "#thriftfinds", "#style", "#whatiwore", "#fashionblogger"],
        ["👗", "👟", "🛍️", "✨", "😍"],
    ),
    "tech": (
        [
            "new laptop setup",
            "desk tour",
            "mechanical keyboard",
            "phone review",
            "smart home gadgets",
            "coding late",
            "side project launch",
            "camera gear",
        ],
        ["#tech", "#desksetup", "#coding", "#gadgets", "#developer", "#techreview", "#100DaysOfCode"],
        ["💻", "⌨️", "🚀", "📱", "💡"],
    ),
    "pets": (
        [
            "puppy training",
            "cat nap",
            "dog beach day",
            "rescue adoption",
            "vet visit",
            "new toy",
            "walkies in the park",
            "kitten zoomies",
        ],
        ["#dogsofinstagram", "#catsofinstagram", "#puppylove", "#adoptdontshop", "#petlife", "#doggo"],
        ["🐶", "🐱", "🐾", "❤️", "😂"],
    ),
    "books": (
        [
            "current read",
            "book haul",
            "reading nook",
            "monthly wrap up",
            "fantasy series",
            "library trip",
            "cozy mystery",
            "annotated copy",
        ],
        ["#bookstagram", "#booktok", "#amreading", "#booklover", "#bookworm", "#readinglist"],
        ["📚", "📖", "☕", "✨", "🤓"],
    ),
    "home": (
        [
            "living room makeover",
            "houseplant corner",
            "IKEA hack",
            "cozy bedroom",
            "kitchen reno",
            "DIY shelves",
            "thrifted lamp",
            "spring cleaning",
        ],
        ["#homedecor", "#interiordesign", "#plantsofinstagram", "#diy", "#cozyhome", "#homeinspo"],
        ["🪴", "🏡", "🛋️", "✨", "🌿"],
    ),
    "music": (
        [
            "new single out",
            "studio session",
            "live gig",
            "guitar cover",
            "vinyl finds",
            "festival weekend",
            "piano practice",
            "open mic night",
        ],
        ["#music", "#newmusic", "#guitar", "#vinyl", "#livemusic", "#singersongwriter", "#producer"],
        ["🎵", "🎸", "🎤", "🎧", "🔥"],
    ),
}

_OPENERS = [
    "Finally",
    "Today's",
    "Can't believe this",
    "Sunday",
    "Quick",
    "My favourite",
    "Throwback to",
    "Honestly obsessed with",
    "First time trying",
    "Back at it:",
    "Little",
    "Another",
]
_CLOSERS = [
    "What do you think?",
    "Link in bio!",
    "Who else?",
    "Tag a friend 👇",
    "More tomorrow.",
    "Save this for later",
    "Drop a comment if you want the details",
    "Feeling grateful.",
    "",
    "",
    "",
]
_MIDDLES = [
    "felt amazing",
    "was harder than expected",
    "is a total game changer",
    "made my whole week",
    "took forever but worth it",
    "changed my routine",
    "is something I didn't know I needed",
    "went better than planned",
    "is all I can think about",
]
_BIO_ROLES = [
    "runner",
    "mum of 2",
    "dog dad",
    "coffee addict",
    "student",
    "nurse",
    "teacher",
    "engineer",
    "designer",
    "amateur chef",
    "plant lady",
    "bookworm",
    "traveller",
    "gamer",
    "photographer",
    "dreamer",
    "yogi",
    "makeup lover",
    "marathoner",
    "foodie",
    "dev",
    "musician",
    "artist",
]
_PLACES = [
    "London",
    "NYC",
    "Berlin",
    "Madrid",
    "Paris",
    "Lisboa",
    "Toronto",
    "Sydney",
    "Tokyo",
    "Milano",
    "São Paulo",
    "Manchester",
    "Austin",
    "Dublin",
    "Cape Town",
    "Mumbai",
]
_HANDLE_PARTS = [
    "jane",
    "runs",
    "the",
    "daily",
    "alex",
    "cooks",
    "mia",
    "beauty",
    "sam",
    "travels",
    "leo",
    "fit",
    "lena",
    "reads",
    "max",
    "plays",
    "nina",
    "home",
    "tom",
    "style",
    "zoe",
    "eats",
    "kai",
    "tech",
]
_FOREIGN: list[str] = [
    "Entrenamiento de hoy, ¡a tope! 💪 #fitness #motivación",
    "Receta fácil de tortilla de patatas para el domingo 😋",
    "Heute 10 km gelaufen, morgen Ruhetag 🏃 #laufen",
    "Neue Hautpflege-Routine mit Vitamin C Serum ✨",
    "Petit-déjeuner healthy avant la séance de yoga 🧘",
    "Nouvelle palette de maquillage, je suis fan 😍 #maquillage",
    "Treino de pernas concluído! Bora 🔥 #treino",
    "Viagem incrível para o Algarve 🌊 #viagem",
    "Pasta fatta in casa con la nonna ❤️ #cucinaitaliana",
    "Corsa al mattino lungo il fiume 🏃‍♂️",
    "今日はランニング10キロ 🏃 #ランニング",
    "新しいスキンケアを試してみた ✨",
    "周末去爬山了，风景很美 🏔️",
    "오늘의 운동 완료 💪 #헬스",
    "تمرين اليوم كان رائع 💪",
    "Vandaag een rondje hardlopen in het park 🏃",
    "Dzisiaj trening nóg 🔥 #siłownia",
    "Bugün yoga yaptım, çok iyi geldi 🧘",
]


def _handle(rng: random.Random) -> str:
    parts = rng.sample(_HANDLE_PARTS, 2)
    sep = rng.choice(["_", ".", "", ""])
    suffix = rng.choice(["", "", str(rng.randint(1, 99)), str(rng.randint(1990, 2010))])
    return "@" + sep.join(parts) + suffix


def _bio(rng: random.Random) -> str:
    """A follower bio: a few roles, a place, an emoji or two, maybe a hashtag or a mention."""
    niche = rng.choice(list(_NICHES))
    things, tags, emoji = _NICHES[niche]
    parts = rng.sample(_BIO_ROLES, rng.randint(1, 3))
    if rng.random() < 0.5:
        parts.append(rng.choice(things))
    if rng.random() < 0.5:
        parts.append(rng.choice(["📍", "based in ", "🏠 "]) + rng.choice(_PLACES))
    sep = rng.choice([" | ", " • ", " / ", ", ", " ✨ "])
    text = sep.join(parts)
    if rng.random() < 0.6:
        text += " " + "".join(rng.sample(emoji, rng.randint(1, min(3, len(emoji)))))
    if rng.random() < 0.3:
        text += " " + " ".join(rng.sample(tags, rng.randint(1, 2)))
    if rng.random() < 0.15:
        text += " IG: " + _handle(rng)
    if rng.random() < 0.1:
        text += " linktr.ee/" + _handle(rng)[1:]
    return text


def _caption(rng: random.Random) -> str:
    """A post caption: a sentence or a few, emoji, a mention, a block of hashtags."""
    niche = rng.choice(list(_NICHES))
    things, tags, emoji = _NICHES[niche]
    sentences = [f"{rng.choice(_OPENERS)} {rng.choice(things)} {rng.choice(_MIDDLES)}"]
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        sentences.append(f"The {rng.choice(things)} {rng.choice(_MIDDLES)}")
    text = ". ".join(sentences) + rng.choice([".", "!", "!!!", " " + rng.choice(emoji)])
    if rng.random() < 0.3:
        text += f" Thanks {_handle(rng)} for the tips"
    closer = rng.choice(_CLOSERS)
    if closer:
        text += " " + closer
    n_tags = rng.choice([0, 1, 3, 5, 8, 12])
    if n_tags:
        pool = tags + [t for other in rng.sample(list(_NICHES), 2) for t in _NICHES[other][1][:2]]
        text += "\n\n" + " ".join(rng.sample(pool, min(n_tags, len(pool))))
    return text


def _long_caption(rng: random.Random) -> str:
    """A rare long caption (a story), so batches have a realistic tail of long texts."""
    return " ".join(_caption(rng).split("\n\n")[0] for _ in range(rng.randint(4, 10)))


def _foreign(rng: random.Random) -> str:
    return rng.choice(_FOREIGN) + (" " + _handle(rng) if rng.random() < 0.3 else "")


def _hashtags_only(rng: random.Random) -> str:
    niche = rng.choice(list(_NICHES))
    return " ".join(rng.sample(_NICHES[niche][1], rng.randint(2, 5)))


_KINDS: list[tuple[float, Callable[[random.Random], str]]] = [
    (0.45, _bio),
    (0.35, _caption),
    (0.08, _foreign),
    (0.07, _hashtags_only),
    (0.05, _long_caption),
]


def social_texts(n: int, seed: int = 7, *, prepare: bool = True) -> list[str]:
    """``n`` bio- and caption-like texts, prepared with ``audiencefit.features.text.prepare_text`` unless ``prepare`` is
    False.

    Texts that prepare to nothing meaningful (emoji only) are replaced, so every returned text has content.
    """
    from audiencefit.features.text import is_meaningful, prepare_text

    rng = random.Random(seed)
    weights = [w for w, _ in _KINDS]
    makers = [m for _, m in _KINDS]
    out: list[str] = []
    while len(out) < n:
        raw = rng.choices(makers, weights)[0](rng)
        prepared = prepare_text(raw)
        if is_meaningful(prepared):
            out.append(prepared if prepare else raw)
    return out


@cache
def corpus_sha256(n: int, seed: int) -> str:
    """sha256 of ``social_texts(n, seed)``: part of the hybrid and aligned backends' ids, so a changed corpus
    changes them.

    Generating 20,000 texts takes seconds and every process that loads the backend needs the id, so the digest
    is remembered in the system's temporary directory under a key made of everything the texts depend on (this
    module's and ``audiencefit.features.text``'s source, ``n``, ``seed``, the Python version); a missing or unreadable
    memo is simply recomputed.
    """
    import sys
    import tempfile
    from pathlib import Path

    import audiencefit.features.text

    key = hashlib.sha256()
    for source in (Path(__file__), Path(audiencefit.features.text.__file__)):
        key.update(source.read_bytes())
    key.update(f"{n}:{seed}:{sys.version}".encode())
    memo = Path(tempfile.gettempdir()) / f"audiencefit-corpus-{key.hexdigest()[:32]}.sha256"
    try:
        known = memo.read_text(encoding="ascii").strip()
        if len(known) == 64:
            return known
    except OSError:
        pass
    digest = hashlib.sha256("\n".join(social_texts(n, seed)).encode()).hexdigest()
    try:
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest, encoding="ascii")
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest
