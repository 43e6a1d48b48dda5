"""audiencefit: shell of the project (settings, logging, CLI). The pipeline lives in features/, models/,
training/ and serving/."""

__version__ = "0.1.0"
