"""evo-nas: surrogate-assisted evolutionary search over recurrent-cell genotypes."""

__version__ = "0.1.0"
