"""What every Petri dish is made of, whatever it hosts: its inner training, the meta-learning
of its synthetic samples and the ensemble of dishes. Each dish kind extends these options with
its own (:class:`~surrogates.rnn_dish.RNNDishOptions`, :class:`~surrogates.mlp_dish.
MLPDishOptions`) and its own defaults, each with the reason for its value.

The options are typed dataclasses (pydantic validates them when they are made, from a YAML
mapping or in Python): a value of the wrong type, out of range, or an option the kind lacks
is refused by the type, one line naming it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictBool
from pydantic.dataclasses import dataclass

from evo_nas_common.bounds import Count, Fraction, NonNegative, Positive, Size, Steps, Width

#: inner training steps: far above any useful dish, whose every step is unrolled in memory
InnerSteps = Annotated[int, Field(strict=True, ge=1, le=10_000)]
#: meta-learning steps (0: none)
MetaSteps = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]
#: how dish options are checked: unknown names refused, values as typed
OPTIONS = ConfigDict(extra="forbid")


@dataclass(frozen=True, kw_only=True, config=OPTIONS)
class DishOptions:
    """The options every dish kind has (its subclass sets the defaults).

    Inner training: ``inner_steps`` Adam steps at ``inner_lr`` on ``samples`` synthetic
    samples (``val_samples`` more for validation). Meta-learning (``meta_steps`` > 0): Adam
    steps at ``meta_lr`` (times ``lr_decay`` every ``lr_decay_every`` steps) on random batches
    of ``meta_batch`` motifs, minimising ``loss`` ("rank": pairwise logistic at
    ``rank_temperature`` on z-normalised scores; "mse": squared error between z-normalised
    scores and the z-normalised ``target_transform`` of the objectives, as in the authors'
    code) plus ``l2`` times the mean square of the synthetic inputs. Ensemble: ``dishes``
    independent dishes; with ``orient`` a dish whose low losses go significantly with high
    objectives is flipped; with ``keep_fraction`` < 1 only that share of them (rounded up),
    those that rank the training motifs best, are combined.
    """

    samples: Size
    val_samples: Size
    dims: Width
    hidden_size: Width
    classes: Size
    inner_steps: InnerSteps
    inner_lr: Positive
    meta_steps: MetaSteps
    meta_lr: Positive
    meta_batch: Size
    lr_decay: Fraction
    lr_decay_every: Steps
    loss: Literal["rank", "mse"]
    rank_temperature: Positive = 0.5
    target_transform: Literal["log", "none"]
    l2: NonNegative
    dishes: Count
    orient: StrictBool
    keep_fraction: Fraction
