"""audiencefit: shell of the project (settings, logging, CLI). The pipeline lives in features/, models/,
training/ and serving/ at the repository root, linked into this package: it is imported as ``audiencefit.features``,
``audiencefit.models``, ``audiencefit.training`` and ``audiencefit.serving``."""

__version__ = "0.1.0"
