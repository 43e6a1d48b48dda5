"""features: raw tables → validated frames → creator statistics, audience quality, embeddings → feature sets."""
