"""Monitoring the bank: stats, annotator agreement, charts."""
