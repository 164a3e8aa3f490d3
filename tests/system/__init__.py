"""Real `fewshot serve` processes: start-up, crashes, security of the bind, rebuild resume."""
