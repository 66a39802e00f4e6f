"""The notifier's use cases: fan events out to SSE clients, call job webhooks."""
