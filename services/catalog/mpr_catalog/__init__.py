"""mpr_catalog: registers the input bucket's media (scan, bucket notifications) and probes it."""
