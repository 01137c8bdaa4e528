"""Helpers that search spaces, surrogates and ground truths share.

The registry that names components, the data root and its checked files, the torch device a
component computes on, state trees stored as JSON, and many small MLPs batched into one
computation. This package imports none of the others.
"""
