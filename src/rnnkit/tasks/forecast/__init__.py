"""Forecasting from a CSV of measurements: data, windows, model, calibration, baselines and metrics."""
