"""The learnt quality model and scoring the bank with it."""
