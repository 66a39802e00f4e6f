"""The catalog's use cases over its ports: scan, apply notifications, probe, reconcile."""
