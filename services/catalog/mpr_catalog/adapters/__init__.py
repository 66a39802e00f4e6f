"""Adapters: the catalog's ports implemented with SQLAlchemy, boto3 and ffprobe."""
