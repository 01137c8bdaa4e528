"""The ``evo-nas`` command line."""
