"""The run directory: its files written atomically, its lock, its event log and TensorBoard."""
