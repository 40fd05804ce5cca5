"""Simulation studies (coverage of confidence and prediction intervals)."""
