"""Test support: real endpoints, generated media and running services."""
