"""The gateway's domain: job records, the job state machine, key rules and cursors.

Nothing here imports the ORM, the broker or the web framework.
"""
