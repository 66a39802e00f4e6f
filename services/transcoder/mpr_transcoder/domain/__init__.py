"""Pure rules and values of a media job: FFmpeg arguments, probes, progress, checks."""
