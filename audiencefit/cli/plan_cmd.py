"""``audiencefit plan``: the best set of creators for a brand and a budget, aware of audience overlap."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from audiencefit.cli._app import BundleOpt, ModelOpt, ModelUriOpt, app, model_source
from audiencefit.cli._types import finite, finite_number
from audiencefit.features.errors import InputError
from audiencefit.features.untrusted_json import parse_json

# audiencefit.models.planner.MAX_CREATORS, not imported: the planner pulls numpy and polars into every CLI start (0.56
# s); tests/code/test_cli_flags.py checks that the two agree.
MAX_CREATORS = 100


class PlanObjectiveChoice(StrEnum):
    conversions = "conversions"
    reach = "reach"


@app.command("plan")
def plan(
    features: Annotated[Path, typer.Option("--features", help="Feature set directory (with its index).")],
    brand: Annotated[
        Path,
        typer.Option("--brand", help="Brand JSON: description and/or segments, filters (as a recommendation request)."),
    ],
    budget: Annotated[
        float, typer.Option("--budget", parser=finite(min=0.01), help="Total spend available (at least 0.01).")
    ],
    bundle: BundleOpt = None,
    model: ModelOpt = None,
    model_uri: ModelUriOpt = None,
    objective: Annotated[
        PlanObjectiveChoice,
        typer.Option(
            "--objective",
            help="What the plan maximises: expected conversions, or unique people reached in the segments "
            "(both discounted for audiences the creators share).",
        ),
    ] = PlanObjectiveChoice.conversions,
    min_creators: Annotated[
        int, typer.Option("--min-creators", min=1, max=MAX_CREATORS, help="At least this many creators in the plan.")
    ] = 1,
    max_creators: Annotated[
        int | None,
        typer.Option(
            "--max-creators", min=1, max=MAX_CREATORS, help=f"At most this many creators (default {MAX_CREATORS})."
        ),
    ] = None,
    min_segment_reach: Annotated[
        list[str] | None,
        typer.Option(
            "--min-segment-reach",
            help="SEGMENT=PEOPLE: expected unique people of that segment the plan must reach; repeatable.",
        ),
    ] = None,
) -> None:
    """Plan a campaign: creators, cost, unique reach per segment, conversions with bands (JSON on stdout)."""
    from pydantic import ValidationError

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.index import default_index_dir, load_index
    from audiencefit.models.planner import Constraints, plan_for_brand
    from audiencefit.models.query import query_embedder
    from audiencefit.models.retrieval import AudienceSearch
    from audiencefit.serving.pipeline import brand_terms, to_filters, to_segments
    from audiencefit.serving.schemas import PlanRequest
    from audiencefit.serving.state import load_serving_model
    from audiencefit.settings import get_settings

    source = model_source(bundle, model, model_uri)
    try:
        body = parse_json(brand.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise InputError(f"--brand {brand}: {exc}") from None
    if not isinstance(body, dict):
        raise InputError(
            f"--brand {brand}: expected a JSON object (a recommendation request), got {type(body).__name__}"
        )
    targets: dict[str, float] = {}
    for item in min_segment_reach or []:
        name, _, value = item.partition("=")
        try:
            targets[name] = finite_number(value)
        except ValueError as exc:
            raise InputError(f"--min-segment-reach {item!r}: expected SEGMENT=PEOPLE ({exc})") from None
    body.update(budget=budget, objective=objective.value, min_creators=min_creators, max_creators=max_creators)
    body["min_segment_reach"] = targets
    try:
        req = PlanRequest.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(brand)'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"--brand {brand}: {problems}") from None
    fs = load_feature_set(features)
    directory = default_index_dir(fs)
    search = AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )
    serving = load_serving_model(source, fs, get_settings())
    result = plan_for_brand(
        search,
        serving.bundle.models,
        to_segments(req),
        to_filters(req.filters),
        Constraints(budget, min_creators, max_creators, targets),
        req.objective,
        brand_terms=brand_terms(req),
    )
    sys.stdout.write(json.dumps(asdict(result), indent=2) + "\n")
