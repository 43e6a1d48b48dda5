"""audiencefit.features.topic_terms and the cluster labels made with it: stop words by each text's own language, generic
words by how evenly they spread over the clusters."""

from __future__ import annotations

import numpy as np
import pytest

from audiencefit.features.compute import _cluster_terms
from audiencefit.features.topic_terms import content_words, language_of, spread, topic_terms


@pytest.mark.parametrize(
    ("text", "kept", "dropped"),
    [
        ("vegan since 2019, cheese without the dairy", {"vegan", "cheese", "dairy"}, {"since", "without", "the"}),
        ("Vivir cada día con mis perros y la playa", {"vivir", "perros", "playa"}, {"cada", "con", "mis"}),
        ("Le car est rouge, car je suis là", {"rouge"}, {"car", "est", "suis"}),  # "car": French for "because"
        ("my dog and my car", {"dog", "car"}, {"and"}),  # ...an English car stays, and "dog" (a Danish stop word)
        ("Einfach leben und wandern in den Bergen", {"einfach", "leben", "wandern", "bergen"}, {"und", "den"}),
    ],
)
def test_stop_words_are_those_of_the_texts_own_language(text: str, kept: set[str], dropped: set[str]) -> None:
    words = set(content_words(text))
    assert kept <= words, words
    assert not dropped & words, words


def test_the_language_is_the_one_whose_stop_words_cover_most_words() -> None:
    assert language_of("vivir cada dia con mis perros y la playa".split()) == "es"
    assert language_of("le chat est sur la table".split()) == "fr"
    assert language_of(["hiking", "trail"]) == "en"  # no stop word at all: English


def test_stored_labels_lose_their_stop_words() -> None:
    assert topic_terms(["disfrutar", "vivir", "cada", "dia", "vez"]) == ["disfrutar", "vivir"]
    assert topic_terms(["hiking", "since", "trail"]) == ["hiking", "trail"]


def test_spread_is_0_in_one_cluster_and_1_evenly_over_all() -> None:
    assert spread([0.0, 0.3, 0.0, 0.0]) == 0.0
    assert spread([0.2, 0.2, 0.2, 0.2]) == pytest.approx(1.0)
    assert 0.3 < spread([0.5, 0.5, 0.0, 0.0]) < 0.6


def test_cluster_labels_leave_out_words_spread_over_every_cluster() -> None:
    """Eight clusters, each with its own topic word; one filler word in every profile of every cluster (as
    frequent in each as the topic word is in its own) and a stop word likewise: neither labels any cluster."""
    topics = ["hiking", "vegan", "gaming", "knitting", "surfing", "baking", "chess", "pottery"]
    texts, assignments = [], []
    for k, topic in enumerate(topics):
        for i in range(6):
            texts.append(f"{topic} happiest since forever {'trail' if i % 2 else 'club'}{k}")
            assignments.append(k)
    table = _cluster_terms(texts, np.asarray(assignments), len(topics))
    labels = table["top_terms"].to_list()
    for k, topic in enumerate(topics):
        assert labels[k][0] == topic, labels[k]
        assert not {"happiest", "since", "forever"} & set(labels[k]), labels[k]


def test_with_few_clusters_only_stop_words_are_dropped() -> None:
    texts = [f"surfing happiest since {i}x" for i in "abc"] + [f"baking happiest since {i}x" for i in "abc"]
    labels = _cluster_terms(texts, np.asarray([0, 0, 0, 1, 1, 1]), 2)["top_terms"].to_list()
    assert "since" not in labels[0] and "happiest" in labels[0] and "surfing" in labels[0]
