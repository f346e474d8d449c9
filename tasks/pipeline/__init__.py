"""A promotion pipeline's reads of its targets' clusters (flows/pipeline.py)."""
