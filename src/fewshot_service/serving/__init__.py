"""The serving lifecycle: start, rebuild, adopt, catch up; the select pipeline; the one write path."""
