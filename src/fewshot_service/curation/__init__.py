"""Curation: curator rules, label policy, review queue, import, seeding, and their types."""
