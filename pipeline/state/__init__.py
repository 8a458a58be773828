"""Dedupe state: the window, message identities, snapshots and restore from the output topic."""
