"""The search: the engine wired from a config, its strategies, state, checkpoint, budget and
final stage; starting and resuming runs."""
