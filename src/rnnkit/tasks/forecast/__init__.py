"""Forecasting from a CSV of measurements: data, windows, baselines and metrics (issue 5, in progress)."""
