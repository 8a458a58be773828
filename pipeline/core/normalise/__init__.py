"""Normalisation primitives: errors, record context, time and value formats (no I/O).

The bottom layer: providers build canonical events from these; nothing here imports upwards.
"""
