"""mpr_transcoder."""
