"""A synthetic creator world for demos and tests: creators, posts, follower samples, brands, segments and past
campaigns drawn from a documented latent story (``docs/synthetic-world.md``), with the truth kept aside."""

from __future__ import annotations

from audiencefit.features.synthetic.world import WorldSummary, default_brand_count, generate_world

__all__ = ["WorldSummary", "default_brand_count", "generate_world"]
