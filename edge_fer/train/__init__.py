"""Training schedules and callbacks."""
