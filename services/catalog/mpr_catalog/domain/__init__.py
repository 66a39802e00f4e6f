"""The catalog's rules: assets, bucket notifications, probe summaries. No I/O, no frameworks."""
