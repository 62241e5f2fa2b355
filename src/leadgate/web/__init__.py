"""The HTTP API: Segment-compatible ingestion and the lead API (FastAPI)."""
