"""Reasons a marketer can read: which segment matched and how strongly, the audience interests behind the match,
and recent captions that echo the segment.

Interest topics are the creator's audience interest clusters (``audience_dist``) weighted by how much each cluster
belongs to the matched segment, named by the cluster's most typical terms.

A figure measured without follower data says so in the sentence that states it: the fit, the audience share and the
interests of a creator without a follower sample are estimated from the creator's own posts (``audience_source``
"content"), and an audience quality without one is computed from engagement alone (``quality_source``
"engagement"). The response carries the same sources as fields next to the figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from audiencefit.features.featureset import FeatureSet
from audiencefit.features.topic_terms import topic_terms
from audiencefit.models.pair_features import IdentityCache, segment_cluster_membership
from audiencefit.models.scoring import FIT_DIGITS
from audiencefit.serving.captions import CaptionStore
from audiencefit.serving.schemas import Explanation, Topic

MAX_TOPICS = 3
MAX_CAPTIONS = 2
MIN_TOPIC_SHARE = 0.02  # clusters holding less of the audience than this are not worth naming
MIN_RELEVANCE = 0.1  # a cluster this far from the segment does not explain a match to it


# The fit and share fields are rounded to FIT_DIGITS decimals (audiencefit.models.scoring.reported); the reasons quote
# them as they are.


def percent(share: float) -> str:
    """A share field (0–1, ``FIT_DIGITS`` decimals) as the percentage the reasons print: the same number ×100."""
    return f"{round(share * 100, FIT_DIGITS - 2):g}%"


def number(value: float) -> str:
    """A rounded field as the reasons print it (no trailing zeros: 0.43, not 0.430)."""
    return f"{value:g}"


def audience_basis(audience_source: str | None) -> str:
    """How an audience figure was measured, in words (empty for a follower sample, the normal case)."""
    if audience_source == "followers":
        return ""
    if audience_source == "content":
        return "estimated from the creator's own posts (no follower data)"
    return "a guess (neither follower data nor enough text to estimate the audience from)"


def quality_basis(quality_source: str | None, audience_source: str | None) -> str:
    """What an audience quality was computed from, in words."""
    if quality_source == "followers+engagement":
        return "computed from a follower sample and engagement"
    if quality_source == "followers":
        return "computed from a follower sample only (no usable posts)"
    if quality_source == "engagement":
        return "computed from engagement only, as there is no follower sample"
    # Feature sets without the column: the audience source is the best hint.
    if audience_source == "followers":
        return "computed with a follower sample"
    return "computed without follower data"


def fit_strength(fit: float) -> str:
    """A word for an audience fit (cosine of the real audience to the segment)."""
    if fit >= 0.5:
        return "strong"
    if fit >= 0.3:
        return "good"
    if fit >= 0.15:
        return "moderate"
    return "weak"


_CLUSTER_TERMS: IdentityCache[Mapping[int, tuple[str, ...]]] = IdentityCache()


def cluster_terms(fs: FeatureSet) -> Mapping[int, tuple[str, ...]]:
    """cluster_id → its top terms (at most 4), from the feature set's cluster table, without stop words (feature
    sets labelled before ``audiencefit.features.topic_terms`` filtered them still name clusters by "since" or "cada").

    Read-only and computed once per loaded feature set (every request's explanations read it)."""

    def make() -> Mapping[int, tuple[str, ...]]:
        table = fs.clusters
        return MappingProxyType(
            {
                int(cid): tuple(topic_terms(str(t) for t in (terms or []))[:4])
                for cid, terms in zip(table["cluster_id"].to_list(), table["top_terms"].to_list(), strict=True)
            }
        )

    return _CLUSTER_TERMS.get(fs, make)


def top_topics(
    fs: FeatureSet, row: int, names: Mapping[int, tuple[str, ...]], membership: np.ndarray | None, n: int = MAX_TOPICS
) -> list[Topic]:
    """The creator's main audience interest clusters; weighted by ``membership`` (one segment's row of
    :func:`segment_cluster_membership`) when given, else by audience share alone."""
    dist = np.asarray(fs.audience_dist[row], dtype=np.float64)
    weight = dist * membership if membership is not None else dist
    order = np.lexsort((np.arange(len(weight)), -weight))
    topics = []
    for k in order[:n]:
        if dist[k] < MIN_TOPIC_SHARE or weight[k] <= 0:
            break
        if membership is not None and membership[k] < MIN_RELEVANCE:
            continue
        topics.append(
            Topic(
                cluster_id=int(k),
                terms=list(names.get(int(k), ())),
                audience_share=round(float(dist[k]), FIT_DIGITS),
                relevance=None if membership is None else round(float(membership[k]), FIT_DIGITS),
            )
        )
    return topics


@dataclass(frozen=True)
class Explainer:
    """Builds explanations for one request: the segments' cluster memberships are computed once."""

    fs: FeatureSet
    names: Mapping[int, tuple[str, ...]]
    segment_labels: list[str]
    segment_texts: list[str]
    membership: np.ndarray  # (n_segments, n_clusters)
    captions: CaptionStore | None
    segment_vectors: np.ndarray | None = None  # (n_segments, dim): quotes are chosen by closeness to these

    @classmethod
    def for_request(
        cls,
        fs: FeatureSet,
        names: Mapping[int, tuple[str, ...]],
        labels: list[str],
        texts: list[str],
        segment_vectors: np.ndarray,
        captions: CaptionStore | None,
    ) -> Explainer:
        membership = segment_cluster_membership(segment_vectors, np.asarray(fs.centroids, dtype=np.float32))
        return cls(fs, names, labels, texts, membership, captions, np.asarray(segment_vectors, dtype=np.float32))

    def explain(
        self,
        *,
        creator_id: str,
        row: int,
        matched: str,
        segment_fit: list[float],
        segment_share: list[float],
        brand_mentions: int,
        audience_quality: float | None,
        audience_source: str | None,
        quality_source: str | None = None,
    ) -> Explanation:
        """Reasons for one scored creator. Every number a reason states is a field of the response as it is sent
        (``segment_fit``, ``segment_share`` and ``audience_quality`` already rounded, ``pipeline.row_fields``), so a
        reader comparing the two finds the same figures."""
        s = self.segment_labels.index(matched) if matched in self.segment_labels else 0
        fit, share = segment_fit[s], segment_share[s]
        basis = audience_basis(audience_source)
        again = "estimated from the creator's own posts" if audience_source == "content" else "a guess"
        head = f"Audience matches “{matched}”: {fit_strength(fit)} fit ({number(fit)})"
        if basis:
            reasons = [f"{head}, {basis}; {percent(share)} of the audience belongs to this segment, also {again}."]
        else:
            reasons = [f"{head}; {percent(share)} of the audience belongs to this segment (from a follower sample)."]
        if len(self.segment_labels) > 1:
            reasons.append(f"Expected to convert best for “{matched}” among {len(self.segment_labels)} segments.")
        topics = top_topics(self.fs, row, self.names, self.membership[s])
        if topics:
            named = "; ".join(
                f"{', '.join(t.terms[:3]) or 'an unnamed cluster'} ({percent(t.audience_share)} of the audience)"
                for t in topics
            )
            if basis:
                reasons.append(f"Audience interests driving the match, {basis}: {named}.")
            else:
                reasons.append(f"Audience interests driving the match: {named}.")
        else:
            reasons.append(
                "No audience interest cluster close to this segment stands out; the fit comes from the "
                "audience's overall profile" + (f", {basis}." if basis else ".")
            )
        if brand_mentions > 0:
            times = "once" if brand_mentions == 1 else f"{brand_mentions} times"
            reasons.append(f"Has already mentioned the brand ({times} in past posts).")
        if audience_quality is not None:
            reasons.append(
                f"Audience quality {number(audience_quality)} out of 100, "
                f"{quality_basis(quality_source, audience_source)}."
            )
        quotes: list[str] = []
        if self.captions is None:
            reasons.append(
                "Caption examples unavailable: the feature set keeps no captions (built before it kept them; rebuild "
                "it) and the service was started without the raw data (--data)."
            )
        else:
            vector = self.segment_vectors[s] if self.segment_vectors is not None else None
            quotes = self.captions.best(creator_id, self.segment_texts[s], MAX_CAPTIONS, vector)
            if quotes:
                reasons.append("Recent captions that echo the segment: " + " | ".join(f"“{q}”" for q in quotes))
        return Explanation(matched_segment=matched, reasons=reasons, topics=topics, captions=quotes)
