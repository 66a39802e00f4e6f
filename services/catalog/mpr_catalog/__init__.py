"""mpr_catalog."""
