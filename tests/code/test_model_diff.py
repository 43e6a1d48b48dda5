"""audiencefit.training.model_diff: two versions' logged metrics and rankings side by side."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.settings import Settings
from audiencefit.training.model_diff import side_by_side, version_metrics


def test_side_by_side_lines_up_creators_by_their_best_rank() -> None:
    champion = pl.DataFrame({"creator_id": ["a", "b", "c"], "handle": ["@a", "@b", "@c"], "conversions": [3.0, 2, 1]})
    challenger = pl.DataFrame({"creator_id": ["c", "d", "a"], "handle": ["@c", "@d", "@a"], "conversions": [5.0, 4, 1]})
    both = side_by_side({"champion": champion, "challenger": challenger})
    assert both["creator_id"].to_list() == ["a", "c", "b", "d"]
    assert both["rank_champion"].to_list() == [1, 3, 2, None]
    assert both["rank_challenger"].to_list() == [3, 1, None, 2]
    assert both["handle"].to_list() == ["@a", "@c", "@b", "@d"]
    assert both["conversions_challenger"].to_list() == [1.0, 5.0, None, 4.0]
    # k keeps each model's first k.
    assert side_by_side({"champion": champion, "challenger": challenger}, k=1)["creator_id"].to_list() == ["a", "c"]
    with pytest.raises(ValueError, match="no creator_id"):
        side_by_side({"x": pl.DataFrame({"id": [1]})})


def test_version_metrics_reads_each_versions_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_dir=tmp_path)
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient(settings.tracking_uri, settings.tracking_uri)
    client.create_registered_model("audiencefit")
    for version, ndcg in ((1, 0.5), (2, 0.6)):
        with mlflow.start_run() as run:
            mlflow.log_metrics({"ndcg20_brand": ndcg, **({"served_ndcg20": 0.4} if version == 2 else {})})
        client.create_model_version("audiencefit", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("audiencefit", "champion", "1")
    table = version_metrics({"champion": "champion", "challenger": "2"}, settings)
    assert table.columns == ["metric", "champion", "challenger"]
    assert table.rows() == [("ndcg20_brand", 0.5, 0.6), ("served_ndcg20", None, 0.4)]
    with pytest.raises(InputError, match="no version 9"):
        version_metrics({"x": "9"}, settings)
