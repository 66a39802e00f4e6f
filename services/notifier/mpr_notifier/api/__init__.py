"""The notifier's HTTP entrypoints: the SSE stream, health and metrics."""
