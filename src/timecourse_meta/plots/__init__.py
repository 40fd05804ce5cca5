"""Plots that draw results they are given (forest, time course); matplotlib is imported
only by these modules."""
