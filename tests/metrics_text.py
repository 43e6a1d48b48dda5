"""Reading ``/metrics`` in tests: the exposition parsed by ``prometheus_client``'s own parser (label order and
number formatting are the library's business, not the tests')."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` (the full sample name: ``..._total``, ``..._bucket``), with its labels."""
    return [
        (dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when there is none)."""
    return sum(v for got, v in samples(text, name) if all(got.get(k) == want for k, want in labels.items()))


def types(text: str) -> dict[str, str]:
    """Metric family name → its declared type."""
    return {family.name: family.type for family in text_string_to_metric_families(text)}
