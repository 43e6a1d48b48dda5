"""The brief reader (audiencefit.models.brief): languages, styles, and hostile input."""

from __future__ import annotations

import time

import pytest

from audiencefit.models.brief import (
    ENGLISH_WEIGHT,
    FALLBACK_ID,
    MAX_AUDIENCE_SEGMENTS,
    SECONDARY_WEIGHT,
    core_of,
    english_gloss,
    guess_language,
    read_brief,
)


def audience(text: str) -> list[str]:
    return [s.text for s in read_brief(text).segments if s.is_clause]


@pytest.mark.parametrize(
    ("brief", "who", "product_word"),
    [
        (
            "A vegan protein-bar brand that wants to reach students who study late and skip meals",
            "students who study late and skip meals",
            "protein-bar",
        ),
        ("Protein bars for students who study late", "students who study late", "Protein"),
        (
            "Somos una marca de café de especialidad y queremos llegar a mochileros que viajan con poco dinero.",
            "mochileros que viajan con poco dinero",
            "café",
        ),
        (
            "Wir sind ein Hersteller von Laufschuhen und wollen junge Eltern erreichen, die wenig Zeit haben.",
            "junge Eltern, die wenig Zeit haben",
            "Laufschuhen",
        ),
        (
            "Marque de cosmétiques bio. Nous voulons toucher les joueurs qui streament le soir.",
            "les joueurs qui streament le soir",
            "cosmétiques",
        ),
        (
            "Marca de ração premium voltada para leitores que participam de clubes do livro.",
            "leitores que participam de clubes do livro",
            "ração",
        ),
        (
            "Brand di chitarre per bambini: vogliamo raggiungere genitori con figli piccoli.",
            "genitori con figli piccoli",
            "chitarre",
        ),
    ],
)
def test_product_first_one_liners_in_six_languages(brief: str, who: str, product_word: str) -> None:
    reading = read_brief(brief)
    assert not reading.fallback
    assert audience(brief) == [who]
    assert product_word in reading.product
    assert all(product_word not in s.text for s in reading.segments if s.role == "audience")


def test_languages_are_guessed() -> None:
    assert guess_language("Somos una marca de café y queremos llegar a los estudiantes") == "es"
    assert guess_language("Wir sind eine Marke und wollen Studierende erreichen, die nachts lernen") == "de"
    assert guess_language("Nous sommes une marque et nous voulons toucher les étudiants qui") == "fr"
    assert guess_language("🔥🔥") == "und"


def test_audience_first_sentence_keeps_the_product_out() -> None:
    reading = read_brief("Students who study late and skip meals — that's who our vegan protein bar is for.")
    assert audience("Students who study late and skip meals — that's who our vegan protein bar is for.") == [
        "Students who study late and skip meals"
    ]
    assert "protein bar" in reading.product


def test_labelled_bullet_list_with_primary_and_secondary_audiences() -> None:
    brief = (
        "Client: smartwatch maker\nGoal: awareness\nTarget audience:\n- stressed professionals who want a calmer "
        "morning\n- people starting yoga at home\nSecondary: retirees who walk every day\nBudget: 5.000 €"
    )
    reading = read_brief(brief)
    assert audience(brief) == [
        "stressed professionals who want a calmer morning",
        "people starting yoga at home",
        "retirees who walk every day",
    ]
    assert reading.product == "smartwatch maker"
    assert not any("5.000" in s.text or "awareness" in s.text for s in reading.segments)
    weights = {s.text: s.weight for s in reading.segments}
    assert weights["people starting yoga at home"] == 1.0
    # a clause and its core share the clause's weight
    assert weights["retirees who walk every day"] + weights["retirees"] == SECONDARY_WEIGHT


def test_german_label_and_dash_labels() -> None:
    assert audience("Zielgruppe:\n- Studierende, die nachts lernen\n- Pendler\nProdukt: Energieriegel") == [
        "Studierende, die nachts lernen",
        "Pendler",
    ]
    brief = "• Product – mineral sunscreen\n• Target – people who camp and hike in national parks\n• Deliverables – 2"
    assert audience(brief) == ["people who camp and hike in national parks"]
    assert read_brief(brief).product == "mineral sunscreen"


def test_negated_and_pronoun_cues_do_not_count() -> None:
    brief = "Camera brand. This campaign is not for photographers: we're trying to reach renters who decorate."
    assert audience(brief) == ["renters who decorate"]
    assert audience("Outdoor jackets for gamers who rarely leave the house; we want to talk to them with humour.") == [
        "gamers who rarely leave the house"
    ]


def test_the_core_of_a_clause_is_its_people_when_they_say_something() -> None:
    assert core_of("parents of toddlers who are looking for activities at home") == "parents of toddlers"
    assert core_of("people who brew pour-over coffee at home") is None  # "people" says nothing
    assert core_of("gravel riders") is None  # nothing to strip
    assert core_of("early adopters who buy the newest gadgets") is None  # marketers' word for anyone
    assert core_of("busy professionals who cook at home") is None
    assert core_of("new parents who sleep little") == "new parents"
    reading = read_brief("Snack brand aimed at PC gamers who stream at night.")
    assert [(s.id, s.weight) for s in reading.segments] == [("audience 1", 0.5), ("audience 1 core", 0.5)]


def test_no_audience_clause_falls_back_to_the_whole_brief_and_says_so() -> None:
    text = "Premium dog food made from fresh ingredients."
    reading = read_brief(text)
    assert reading.fallback
    assert [(s.text, s.weight, s.role, s.id) for s in reading.segments] == [(text, 1.0, "brief", FALLBACK_ID)]
    assert "no audience clause" in reading.note


@pytest.mark.parametrize("text", ["", "   \n\t ", "🔥🔥🔥 💪✨", "ブランドは学生に届けたい", "!!! ??? ---"])
def test_hostile_input_falls_back_without_raising(text: str) -> None:
    reading = read_brief(text)
    assert reading.fallback
    assert len(reading.segments) == 1


def test_a_huge_brief_is_read_quickly_and_bounded() -> None:
    brief = "Coffee brand that wants to reach runners who train at dawn. " * 5_000 + "\n- " * 10_000
    started = time.perf_counter()
    reading = read_brief(brief)
    assert time.perf_counter() - started < 5.0
    assert 1 <= len([s for s in reading.segments if s.role == "audience"]) <= 3 * MAX_AUDIENCE_SEGMENTS
    many = "\n".join(f"Target: group {i} of runners who train" for i in range(50))
    assert (
        len({s.id.removesuffix(" core").removesuffix(" in English") for s in read_brief(many).segments})
        == MAX_AUDIENCE_SEGMENTS
    )


@pytest.mark.parametrize(
    "text",
    [
        "wollen " * 3000,
        ", die " * 4000,
        "for for " * 3000,
        "not for " * 3000,
        "Wir wollen " + "junge " * 3000 + "x",
        "Zielgruppe: " + "Hobbymusiker " * 5000,  # the English words are looked for in a bounded prefix
        "Wir wollen Radfahrer erreichen. " + "Sie fahren. " * 5000,  # a bounded number of sentences join a clause
    ],
)
def test_repetitive_hostile_briefs_stay_fast(text: str) -> None:
    started = time.perf_counter()
    read_brief(text)
    assert time.perf_counter() - started < 3.0  # quadratic scans took 3–13 s on these before they were bounded


def test_reading_is_deterministic() -> None:
    brief = "Marca de ropa sostenible dirigida a corredores que entrenan para su primer maratón."
    assert read_brief(brief) == read_brief(brief)


def test_product_weight_adds_a_low_weight_product_segment() -> None:
    reading = read_brief("A coffee roaster that wants to reach hikers.", product_weight=0.25)
    product = [s for s in reading.segments if s.role == "product"]
    assert len(product) == 1 and product[0].weight == pytest.approx(0.25)
    assert "coffee roaster" in product[0].text
    assert not [s for s in read_brief("A coffee roaster that wants to reach hikers.").segments if s.role == "product"]


@pytest.mark.parametrize(
    ("brief", "english"),
    [
        ("Kaffeerösterei sucht Creator für Hobbymusiker, die Gitarre lernen.", "musicians"),  # a German compound
        ("Una app de ahorro pensada para padres con niños pequeños.", "parents children"),
        ("Marque de thé qui veut toucher les randonneurs du dimanche.", "hikers"),
        ("Marca de café voltada para ciclistas que pedalam no fim de semana.", "cyclists"),
        ("Zielgruppe: Radpendler", "commuters"),
    ],
)
def test_a_clause_in_another_language_gets_english_words_for_its_people(brief: str, english: str) -> None:
    reading = read_brief(brief)
    glossed = [s for s in reading.segments if s.id.endswith(" in English")]
    assert [s.text for s in glossed] == [english]
    assert glossed[0].weight == pytest.approx(ENGLISH_WEIGHT)  # of a clause of weight 1
    assert sum(s.weight for s in reading.segments if s.role == "audience") == pytest.approx(1.0)
    assert len(audience(brief)) == 1  # the English words are no clause of their own


def test_no_english_words_for_english_or_generic_people() -> None:
    assert english_gloss("gamers who stream at night") is None  # already English
    assert english_gloss("personas que hacen pan en casa") is None  # "people" says nothing
    assert english_gloss("jóvenes que juegan videojuegos") is None  # "young people" neither
    assert english_gloss("Studierende, die nachts lernen") is None
    reading = read_brief("Snack brand aimed at PC gamers who stream at night.")
    assert not any(s.id.endswith(" in English") for s in reading.segments)


def test_a_sentence_going_on_about_the_audience_joins_its_clause() -> None:
    brief = (
        "Young professionals saving for their first flat. They read money blogs and hate wasting cash. "
        "Our brand makes durable workwear."
    )
    assert audience(brief) == [
        "Young professionals saving for their first flat. They read money blogs and hate wasting cash"
    ]
    assert "workwear" in read_brief(brief).product
    # not when the sentence is about the brand, and not without an audience before it
    assert audience("Snack brand for gamers who stream. They love our bars.") == ["gamers who stream"]
    assert read_brief("Workwear that lasts. They say it is timeless.").fallback
    assert audience("Nous voulons toucher les coureurs du dimanche. Ils courent dix kilomètres.") == [
        "les coureurs du dimanche. Ils courent dix kilomètres"
    ]
