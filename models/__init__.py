"""models: what is fitted and what serving loads (audience index, prediction models, versioned bundle)."""
