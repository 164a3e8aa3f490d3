"""Banks on both SQLite and the real PostgreSQL server: the bank, migrations, replicas."""
