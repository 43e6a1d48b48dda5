"""training: point-in-time training sets, training, evaluation against baselines, MLflow registry."""
