"""mpr_notifier."""
