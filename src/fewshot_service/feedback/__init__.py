"""Closing the loop (issue 20): selections recorded, outcomes reported, per-example utility."""
