"""evo-nas: surrogate-assisted evolutionary search over recurrent-cell genotypes.

The front door: what a user or a plug-in author needs, by name, without knowing the wings
behind it. ``import evo_nas`` is cheap: each name is imported on first use (torch and the
engine load only when a name that needs them is touched).

    import evo_nas
    best = evo_nas.run_search("examples/table_demo.yaml")
    space = evo_nas.build("space", "nasbench_nlp")
    dish = evo_nas.build("surrogate", "spd", {"dish": "rnn"}, space=space, seed=0)

Plug-ins subclass :class:`SearchSpace`, :class:`Surrogate`, :class:`GroundTruth` or
:class:`Strategy` and register in :data:`SPACES`, :data:`SURROGATES`, :data:`GROUND_TRUTHS`
or :data:`STRATEGIES` (or through the entry-point groups ``evo_nas.search_spaces``,
``evo_nas.surrogates`` and ``evo_nas.ground_truths``); docs/extending.md walks through it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    # running and resuming searches
    "run_search": "evo_nas.search.launch",
    "start_run": "evo_nas.search.launch",
    "resume_search": "evo_nas.search.launch",
    "check_config": "evo_nas.search.launch",
    "RunDir": "evo_nas.rundir.files",
    # configs and components
    "SearchConfig": "evo_nas.config.schema",
    "load_config": "evo_nas.config.schema",
    "parse_config": "evo_nas.config.schema",
    "validate_model": "evo_nas.config.schema",
    "build": "evo_nas.config.components",
    # comparisons
    "PredictCompareConfig": "evo_nas.compare.predict",
    "load_predict_config": "evo_nas.compare.predict",
    "run_predict_comparison": "evo_nas.compare.predict",
    "draw_sets": "evo_nas.compare.predict",
    "load_search_compare": "evo_nas.compare.search",
    "run_search_comparison": "evo_nas.compare.search",
    # the command line, as a click command (``evo-nas``)
    "main": "evo_nas.cli.commands",
    # errors, each a one-line message
    "ConfigError": "evo_nas.config.errors",
    "RunDirError": "evo_nas.rundir.lock",
    "CheckpointError": "evo_nas.search.checkpoint",
    "GenotypeError": "search_spaces.base",
    # registries
    "SPACES": "search_spaces",
    "SURROGATES": "surrogates",
    "GROUND_TRUTHS": "ground_truths",
    "STRATEGIES": "evo_nas.search.strategy",
    # base classes and contracts
    "Genotype": "search_spaces.base",
    "SearchSpace": "search_spaces.base",
    "RecurrentCell": "search_spaces.base",
    "CellBatch": "search_spaces.base",
    "Surrogate": "surrogates.base",
    "Capabilities": "surrogates.base",
    "GroundTruth": "ground_truths.base",
    "Result": "ground_truths.base",
    "Strategy": "evo_nas.search.strategy",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'evo_nas' has no attribute '{name}'")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
