"""The job core and the delivery semantics around it, behind ports (application/ports.py)."""
