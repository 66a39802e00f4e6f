"""Adapters: the notifier's ports implemented over SQL and HTTP."""
