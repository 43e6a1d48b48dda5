"""``audiencefit import``: turn common creator exports into the data contracts (``audiencefit.features.schemas``).

Formats (``docs/importing.md`` has worked examples):

- ``mapping``: any CSV or JSON Lines export plus a column-mapping file (YAML or JSON) saying which source column is
  which contract column (:mod:`audiencefit.features.importing.mapping`).
- ``instagram``: the post JSON of Instagram's web API and of the common scrapers, one object per post
  (:mod:`audiencefit.features.importing.instagram`).

Both produce text frames in the contract's column names with the place each row came from; :mod:`.rows` turns those
into validated contract tables (duplicate posts merged, every problem named by source file, line and field), and
:mod:`.output` writes creators, posts and ``export.json`` to a staging directory, validates that with the same
validator as ``audiencefit validate`` and only then puts it in place: bad input writes nothing.
"""

from __future__ import annotations

FORMATS = ("mapping", "instagram")
