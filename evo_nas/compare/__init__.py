"""Comparisons: surrogates head to head on one test set, whole searches per method and seed."""
