"""``nas measure``: time a run's front and the space's baselines again, together, in interleaved rounds.

    record.py   latency.json read back as a table (numbers only; the report reads it)
    timing.py   the measurement itself (builds and times networks)
"""
