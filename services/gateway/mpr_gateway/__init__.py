"""mpr_gateway."""
