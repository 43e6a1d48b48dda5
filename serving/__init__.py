"""serving: the FastAPI recommendation service and batch scoring jobs."""
