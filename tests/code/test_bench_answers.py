"""benchmarks.answers: the one field that differs between two runs of the same request is blanked, nothing else."""

from __future__ import annotations

import pytest

from benchmarks.answers import blank_id


def test_the_recommendation_id_is_blanked_and_the_rest_kept() -> None:
    body = '{"recommendation_id":"' + "0123456789abcdef" * 2 + '","count":2,"creators":[{"recommendation_id":1}]}'
    assert blank_id(body) == '{"recommendation_id":"-","count":2,"creators":[{"recommendation_id":1}]}'


@pytest.mark.parametrize(
    "body",
    ['{"count":0}', '{"recommendation_id":"' + "a" * 32 + '","x":{"recommendation_id":"' + "b" * 32 + '"}}'],
)
def test_a_body_without_exactly_one_id_is_refused(body: str) -> None:
    with pytest.raises(ValueError, match="one recommendation_id"):
        blank_id(body)
