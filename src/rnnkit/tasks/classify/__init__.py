"""Time-series classification: labelled series in, one label out (the lecture's many-to-one)."""
