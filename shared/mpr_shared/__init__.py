"""mpr_shared."""
