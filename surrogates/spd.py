"""The Synthetic Petri Dish surrogate (Rawal et al. 2020, arXiv 2005.13092).

A motif is trained for a few steps in a tiny network on a handful of synthetic samples
(:class:`~surrogates.rnn_dish.RNNDish` for recurrent cells, :class:`~surrogates.mlp_dish.
MLPDish` for activation motifs); its loss after that training is the dish's own score.
``fit`` learns from ground truth in two composable ways: it can meta-learn the synthetic
samples by gradient descent through the unrolled inner training, so that the dish's losses
order the training motifs as their real objectives do (the paper's method), and it can fit a
read-out (:class:`~surrogates.readout.ResidualGP`) that corrects the dish's score from the
whole recorded inner training of the training motifs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BeforeValidator, Field, ValidationError
from scipy.stats import rankdata, spearmanr

from evo_nas_common.bounds import first_error
from evo_nas_common.devices import resolve_device
from search_spaces import Genotype, SearchSpace
from surrogates.base import Capabilities, Surrogate, finite_targets
from surrogates.dish_cache import FeatureCache
from surrogates.mlp_dish import MLPDish, MLPDishOptions
from surrogates.readout import AnchoredRidge, ReferenceScale, ResidualGP
from surrogates.rnn_dish import RNNDish, RNNDishOptions

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_GRAD_CLIP = 10.0
#: ``orient`` flips a dish only when its scores and the objectives are negatively correlated
#: at this one-sided significance: ten cells are too few to trust a sign by its estimate alone
_ORIENT_P = 0.05
#: options that change where or in what chunks a dish computes, not what it records
_NOT_IN_RECORDS = ("device", "predict_batch", "feature_cache", "readout", "descriptors")
#: cells, drawn from the space by the surrogate's seed, whose records set the scale of every
#: feature of the ``ridge`` read-out and of its prior (a cell's value must not depend on the
#: cells predicted with it); recorded once, like any cell
REFERENCE_CELLS = 256
#: the zero-shot prior's structural terms (``SearchSpace.descriptors``), in units of the
#: dish score's z-scored rank: a cell whose output cannot read the current input ranks after
#: every cell that can (a language model blind to the current word is nearly a unigram
#: model); a gated input moves a cell up by an eighth of the distribution (0.25 of the
#: z-scored rank of a binary descriptor; NAS-Bench-NLP, docs/results/compare_nbnlp.md)
_BLIND = 10.0
_GATED = 0.25 * np.sqrt(3.0)

#: a dish kind and its options (``dish: rnn``, or a mapping with ``kind`` and options)
DishSpec = Annotated[RNNDishOptions | MLPDishOptions, Field(discriminator="kind")]
#: the option kinds by name
DISHES: dict[str, type[RNNDishOptions] | type[MLPDishOptions]] = {
    "rnn": RNNDishOptions,
    "mlp": MLPDishOptions,
}


def _kind_only(value: Any) -> Any:
    """``auto`` -> None (the space decides), another name -> that kind's defaults."""
    if value == "auto":
        return None
    return {"kind": value} if isinstance(value, str) else value


def dish_options(dish: Any, space: SearchSpace) -> RNNDishOptions | MLPDishOptions:
    """The dish kind and its options from options, a kind's name or a mapping with a ``kind``
    (``auto`` or None: the kind the space's motif needs, with its defaults)."""
    value = _kind_only(dish)
    if isinstance(value, (RNNDishOptions, MLPDishOptions)):
        return value
    if value is None:
        return DISHES["mlp" if space.motif == "activation" else "rnn"]()
    if not isinstance(value, dict) or value.get("kind") not in DISHES:
        raise ValueError(f"dish: a kind ({'|'.join(DISHES)}) or a mapping with one, got {dish!r}")
    options = {k: v for k, v in value.items() if k != "kind"}
    try:
        return DISHES[value["kind"]](**options)
    except ValidationError as e:
        raise ValueError(first_error(e, "dish")) from None


class PetriDishSurrogate(Surrogate):
    """Scores motifs by training them in synthetic Petri dishes, learning from ground truth.

    ``dish`` is the dish kind with its options: :class:`~surrogates.rnn_dish.RNNDishOptions`
    for recurrent cells, :class:`~surrogates.mlp_dish.MLPDishOptions` for activation
    motifs, or a kind's name for its defaults; ``auto`` (None) picks by the space's
    ``motif``. Each dish trains every motif ``inner_steps`` Adam steps at ``inner_lr``; the
    options' own docstrings say what each one does and why its default was chosen.

    Meta-learning (``meta_steps`` > 0) learns the synthetic samples by gradient descent
    through the unrolled inner training (the paper's method); diverged motifs (objective inf)
    only count as worse than every finite one, and a second ``fit`` continues from the
    samples learned so far. Read-out (RNN dish, ``readout: gp``): each dish records every
    motif's inner training (:meth:`features`), and ``fit`` learns a correction of the
    dish's score from the training motifs' records (:class:`~surrogates.readout.
    ResidualGP`), which also gives a spread per prediction (:meth:`predict_with_std`);
    unfitted, or with fewer than five cells, the prediction is the dish's own score.
    ``readout: none`` ranks by the dishes' scores alone. A motif that diverges in a dish is
    predicted ``inf``.

    The ``dishes`` dishes (seeds derived from ``seed``) are combined: with the read-out by
    the mean of their scores, without it by their mean rank. Every motif's record is cached
    by its key until the synthetic data change; ``feature_cache`` names a folder that keeps
    the records across runs. ``device``: ``auto`` (CUDA when present), ``cpu``, ``cuda``,
    ...; the synthetic data and initial weights are drawn on the CPU, so a seed gives the
    same dish anywhere. Motifs are trained ``predict_batch`` at once (default 4,096 on CUDA;
    on a CPU 32 RNN motifs, 512 MLP ones).
    """

    #: the dish's own score needs no ground truth; the read-out gives a spread; recording
    #: cells and meta-learning report progress
    capabilities = Capabilities(ranks_unfitted=True, spread=True, progress=True)

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        dish: Annotated[DishSpec | None, BeforeValidator(_kind_only)] = None,
        feature_cache: Path | None = None,
        predict_batch: Annotated[int, Field(ge=1, le=1_000_000)] | None = None,
        precision: Literal["float32", "float64"] = "float32",
        device: str = "auto",
    ) -> None:
        super().__init__(space, seed)
        dish = dish_options(dish, space)
        if predict_batch is not None and predict_batch < 1:
            raise ValueError(f"predict_batch must be at least 1, got {predict_batch}")
        if precision not in _DTYPES:
            raise ValueError(f"precision must be float32|float64, got '{precision}'")
        #: the dish kind and its options, as typed
        self.dish = dish
        self.device = resolve_device(device)
        self.predict_batch = predict_batch
        self.precision = precision
        #: every setting as data: what a motif's record depends on, and what a saved state
        #: must match
        self.options: dict[str, Any] = {
            "dish": dish.kind,
            **{k: v for k, v in asdict(dish).items() if k != "kind"},
            "predict_batch": predict_batch,
            "precision": precision,
            "device": device,
        }
        seeds = [int(s) for s in np.random.SeedSequence(seed).generate_state(dish.dishes)]
        if isinstance(dish, MLPDishOptions):  # one batched computation; RNN dishes are too
            self.dishes_: list[RNNDish | MLPDish] = [  # large for that
                MLPDish(space, seeds, dish, _DTYPES[precision], self.device)
            ]
        else:
            self.dishes_ = [RNNDish(space, s, dish, _DTYPES[precision], self.device) for s in seeds]
        self.history_: list[list[float]] = [[] for _ in self.dishes_]
        #: one sign per dish (see ``orient``), in the order of :meth:`dish_scores`' rows
        self.signs_: list[float] = [1.0] * dish.dishes
        #: the rows of :meth:`dish_scores` that ``predict`` combines (see ``keep_fraction``)
        self.kept_: list[int] = list(range(dish.dishes))
        readout = dish.readout if isinstance(dish, RNNDishOptions) else "none"
        self.readout_: AnchoredRidge | ResidualGP | None = {
            "ridge": AnchoredRidge(),
            "gp": ResidualGP(seed),
        }.get(readout)
        self.cache_ = FeatureCache(feature_cache)
        self.reference_: list[Genotype] | None = None
        self.scale_: tuple[Any, ReferenceScale] | None = None

    # -- meta-learning ---------------------------------------------------------------------------
    def _targets(self, objectives: Sequence[float]) -> torch.Tensor:
        """Objectives transformed for the outer loss; inf (diverged) stays inf."""
        y = np.asarray(objectives, dtype=float)
        y = np.where(np.isfinite(y), y, np.inf)
        out = y.copy()
        if self.dish.target_transform == "log":
            fin = np.isfinite(y)
            out[fin] = np.log(np.maximum(y[fin], 1e-12))
        return torch.as_tensor(out, dtype=self.dishes_[0].dtype)

    def outer_loss(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """How badly dish ``scores`` order motifs with ``targets`` (inf = diverged)."""
        fin = torch.isfinite(targets)
        s_fin = scores[fin]
        z = (scores - s_fin.mean()) / (s_fin.std() + 1e-6)
        if self.dish.loss == "mse":
            t = targets[fin]
            zt = (t - t.mean()) / (t.std() + 1e-6)
            loss = (z[fin] - zt).pow(2).mean()
            if not bool(fin.all()):
                # diverged motifs: only required to score worse than every finite one
                loss = loss + torch.relu(z[fin].max() - z[~fin]).pow(2).mean()
            return loss
        better = targets[:, None] < targets[None, :]  # i better than j; inf-inf pairs excluded
        margin = (z[None, :] - z[:, None])[better]  # should be positive
        temp = self.dish.rank_temperature
        return torch.nn.functional.softplus(-margin / temp).mean() * temp

    def ranking_loss(self, scores: np.ndarray, objectives: Sequence[float]) -> float:
        """:meth:`outer_loss` of ``scores`` (a dish's row or ``predict``'s output) against
        raw ``objectives``: how badly they order those motifs (nan if a score is inf)."""
        targets = self._targets(objectives)
        return float(self.outer_loss(torch.as_tensor(scores, dtype=targets.dtype), targets))

    def meta_loss(
        self,
        dish: RNNDish | MLPDish,
        genotypes: Sequence[Genotype],
        targets: torch.Tensor,
        data: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """The outer objective of one dish object (summed over the dishes it computes),
        differentiable in the synthetic ``data`` (see the dishes' ``data``)."""
        targets = targets.to(dish.device)
        start = sum(d.members for d in self.dishes_[: self.dishes_.index(dish)])
        signs = torch.tensor(
            self.signs_[start : start + dish.members], dtype=dish.dtype, device=dish.device
        )

        def signed_scores(motifs: Sequence[Genotype]) -> torch.Tensor:
            raw = dish.scores(motifs, data, create_graph=True)
            return raw.reshape(dish.members, -1) * signs[:, None]

        scores = signed_scores(genotypes)
        finite = torch.isfinite(scores.detach()).all(dim=0)
        if not bool(finite.all()):
            # a motif diverging in the dish would poison the meta-gradient: drop it
            keep = [i for i in range(len(genotypes)) if finite[i]]
            if len(keep) < 2:
                return sum((t * 0).sum() for t in data.values())  # nothing left to order
            genotypes, targets = [genotypes[i] for i in keep], targets[keep]
            scores = signed_scores(genotypes)
        # the L2 penalty keeps the inputs in range
        penalty = data["x_train"].pow(2).mean() + data["x_val"].pow(2).mean()
        loss = sum(self.outer_loss(row, targets) for row in scores)
        return loss + self.dish.l2 * dish.members * penalty

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> PetriDishSurrogate:
        genotypes = list(genotypes)
        if len(genotypes) != len(objectives):
            raise ValueError(f"{len(genotypes)} genotypes but {len(objectives)} objectives")
        targets = self._targets(objectives)
        o = self.dish
        if o.orient:
            self.signs_ = [1.0] * o.dishes
            for k, raw in enumerate(self.dish_scores(genotypes)):
                self.signs_[k] = _orientation(raw, targets.numpy())
        if o.meta_steps:
            self._meta_learn(genotypes, targets)
        keep = math.ceil(o.keep_fraction * o.dishes)
        if keep < o.dishes:
            # a motif that diverged in a dish ties with the dish's worst finite score, so the
            # dish's fit to the other motifs still counts; a dish in which every training
            # motif diverged has no fit to judge (nan loss): last
            fit_loss = [
                self.ranking_loss(finite_targets(row), objectives)
                if np.isfinite(row).any()
                else np.nan
                for row in self.dish_scores(genotypes)
            ]
            order = np.argsort(np.nan_to_num(fit_loss, nan=np.inf), kind="stable")
            self.kept_ = sorted(int(i) for i in order[:keep])
        if isinstance(self.readout_, AnchoredRidge):
            features, prior = self.panel(genotypes)
            self.readout_.fit(features, prior, np.asarray(objectives, float))
        elif self.readout_ is not None:
            records = self.features(genotypes)
            self.readout_.fit(records, self.combined_scores(records), np.asarray(objectives, float))
        return self

    def _meta_learn(self, genotypes: list[Genotype], targets: torch.Tensor) -> None:
        """``meta_steps`` outer steps per dish on the synthetic data (the paper's method)."""
        o = self.dish
        for k, dish in enumerate(self.dishes_):
            rng = np.random.default_rng([self.seed, k])
            data = {k: v.clone().requires_grad_(True) for k, v in dish.data.items()}
            opt = torch.optim.Adam(list(data.values()), lr=o.meta_lr)
            sched = torch.optim.lr_scheduler.StepLR(opt, o.lr_decay_every, o.lr_decay)
            for step in range(1, o.meta_steps + 1):
                n = min(o.meta_batch, len(genotypes))
                idx = np.sort(rng.choice(len(genotypes), size=n, replace=False))
                t = targets[idx]
                if int(torch.isfinite(t).sum()) < 2 or len(torch.unique(t)) < 2:
                    continue  # nothing to order in this batch
                loss = self.meta_loss(dish, [genotypes[i] for i in idx], t, data)
                opt.zero_grad()
                loss.backward()
                # a tensor the score does not read (x_val when scoring on training samples)
                # has no gradient; Adam leaves it as it is
                moved = [x for x in data.values() if x.grad is not None]
                grads_ok = all(torch.isfinite(x.grad).all() for x in moved)
                if torch.isfinite(loss) and grads_ok:
                    _clip_per_dish(moved, dish.members)
                    opt.step()
                sched.step()
                self.history_[k].append(float(loss.detach()))
                if self.progress is not None:
                    self.progress(
                        {"event": "meta_step", "dish": k + 1, "dishes": len(self.dishes_),
                         "step": step, "steps": o.meta_steps, "loss": self.history_[k][-1]}
                    )  # fmt: skip
            dish.data = {k: v.detach() for k, v in data.items()}

    # -- the dishes' records -----------------------------------------------------------------------
    def features(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        """Every dish's record of each motif's inner training side by side ``[M, dishes *
        F]`` (RNN dish; the columns of :meth:`feature_names`), from the cache where the
        motif was trained before with the same synthetic data."""
        if not isinstance(self.dish, RNNDishOptions):
            raise ValueError("only the RNN dish records its inner training")
        genotypes = list(genotypes)
        keys = [self.space.key(g) for g in genotypes]
        self.cache_.use(self._identity())
        missing = {k: g for k, g in zip(keys, genotypes) if k not in self.cache_}
        if missing:
            # Motifs of similar size trained together: a batch costs as much as its largest
            # motif, so sorting by token count spares most of the padding (records unchanged).
            todo = sorted(missing.items(), key=lambda kg: len(self.space.tokens(kg[1])))
            chunk = self.predict_batch or default_predict_batch(self.device, "rnn")
            parts = [[g for _, g in todo[i : i + chunk]] for i in range(0, len(todo), chunk)]
            rows, done = [], 0
            if self.progress is not None:  # screening shown from its start, not its first part
                self.progress({"event": "screen", "done": 0, "total": len(todo)})
            for part in parts:
                rows.append(
                    np.concatenate(
                        [d.trajectory(part).cpu().double().numpy() for d in self.dishes_], 1
                    )
                )
                done += len(part)
                if self.progress is not None:  # a warm start records a thousand cells
                    self.progress({"event": "screen", "done": done, "total": len(todo)})
            self.cache_.add([k for k, _ in todo], np.concatenate(rows))
        width = len(self.feature_names())
        return self.cache_.rows(keys, width)

    def feature_names(self) -> list[str]:
        """The columns of :meth:`features`: ``dish<k>.<column>`` for every dish."""
        return [
            f"dish{k}.{name}"
            for k, dish in enumerate(self.dishes_)
            for name in dish.feature_names()
        ]

    def _identity(self) -> str:
        """What a motif's record depends on: the space, the dishes' options and data."""
        digest = hashlib.sha1()
        ident = {k: v for k, v in self.options.items() if k not in _NOT_IN_RECORDS}
        digest.update(repr((*self.space.identity(), sorted(ident.items()))).encode())
        digest.update(f"{self.device.type}|{torch.__version__}".encode())
        for dish in self.dishes_:
            digest.update(str(dish.seed).encode())
            for name in sorted(dish.data):
                digest.update(dish.data[name].detach().cpu().numpy().tobytes())
        return digest.hexdigest()[:20]

    def _score_columns(self) -> list[int]:
        """Per dish, the column of :meth:`features` holding its own score."""
        width = len(self.dishes_[0].feature_names())
        names = self.dishes_[0].feature_names()
        col = names.index(f"{self.dish.score}_loss_{self.dish.inner_steps}")
        return [k * width + col for k in range(len(self.dishes_))]

    def combined_scores(self, records: np.ndarray) -> np.ndarray:
        """The kept dishes' signed scores averaged per motif (inf if one diverged)."""
        scores = records[:, self._score_columns()] * np.asarray(self.signs_)
        scores = np.where(np.isfinite(scores), scores, np.inf)[:, self.kept_]
        return scores.mean(axis=1)

    # -- the panel: records, descriptors and the zero-shot prior ----------------------------------
    def panel(self, genotypes: Sequence[Genotype]) -> tuple[np.ndarray, np.ndarray]:
        """The cells' features for the ``ridge`` read-out ``[M, F]`` and their zero-shot prior
        ``[M]`` (lower = better; inf where a dish diverged): every dish's record and the
        space's descriptors, each as a z-scored rank among :data:`REFERENCE_CELLS` reference
        cells; the prior is the dishes' combined score so scaled, plus the structural terms
        of the space's ``input_delay`` and ``input_gated`` when it gives them."""
        rows = self._panel_rows(list(genotypes))
        z = self._reference_scale().transform(rows)
        prior = np.where(np.isfinite(rows[:, 0]), z[:, 0], np.inf)
        names = self._descriptor_names()
        if "input_delay" in names:
            delay = rows[:, 1 + len(self.feature_names()) + names.index("input_delay")]
            prior = prior + _BLIND * (delay > 0)
        if "input_gated" in names:
            gated = rows[:, 1 + len(self.feature_names()) + names.index("input_gated")]
            prior = prior - _GATED * gated
        return z[:, 1:], prior

    def _reference_scale(self) -> ReferenceScale:
        """The reference cells' panel as a scale, kept until what it depends on changes (the
        synthetic data, the dishes' signs and which dishes are kept)."""
        self.cache_.use(self._identity())
        key = (self.cache_.identity, tuple(self.signs_), tuple(self.kept_))
        if self.scale_ is None or self.scale_[0] != key:
            self.scale_ = (key, ReferenceScale(self._panel_rows(self._reference())))
        return self.scale_[1]

    def _panel_rows(self, genotypes: list[Genotype]) -> np.ndarray:
        """Raw panel columns: the combined dish score, every dish's record, the descriptors."""
        records = self.features(genotypes)
        names = self._descriptor_names()
        described = [self.space.descriptors(g) for g in genotypes]
        descriptors = np.array([[d[n] for n in names] for d in described], float)
        return np.column_stack(
            [self.combined_scores(records), records, descriptors.reshape(len(genotypes), -1)]
        )

    def _descriptor_names(self) -> list[str]:
        """The space's descriptors the panel uses (none with ``descriptors: false``)."""
        if not (isinstance(self.dish, RNNDishOptions) and self.dish.descriptors):
            return []
        return sorted(self.space.descriptors(self._reference()[0]))

    def _reference(self) -> list[Genotype]:
        """:data:`REFERENCE_CELLS` distinct cells of the space, drawn by the seed (fewer in a
        space that holds fewer)."""
        if self.reference_ is None:
            rng = np.random.default_rng([self.seed, 7919])
            cells: dict[str, Genotype] = {}
            for _ in range(20 * REFERENCE_CELLS):
                g = self.space.sample(rng)
                cells.setdefault(self.space.key(g), g)
                if len(cells) == REFERENCE_CELLS:
                    break
            self.reference_ = list(cells.values())
        return self.reference_

    # -- prediction ------------------------------------------------------------------------------
    def dish_scores(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        """Each dish's loss ``[dishes, M]`` on its ``score`` samples after inner training,
        times the dish's sign; inf where diverged."""
        genotypes = list(genotypes)
        if isinstance(self.dish, RNNDishOptions):
            out = self.features(genotypes)[:, self._score_columns()].T
        else:
            chunk = self.predict_batch or default_predict_batch(self.device, "mlp")
            out = np.concatenate(
                [
                    np.concatenate(
                        [
                            dish.scores(genotypes[i : i + chunk])
                            .reshape(dish.members, -1)
                            .cpu()
                            .double()
                            for i in range(0, len(genotypes), chunk)
                        ],
                        axis=1,
                    )
                    for dish in self.dishes_
                ]
            )
        out = out * np.asarray(self.signs_)[:, None]
        return np.where(np.isfinite(out), out, np.inf)

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        return self.predict_with_std(genotypes)[0]

    def predict_with_std(self, genotypes: Sequence[Genotype]) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and, from a fitted read-out, their spread (nan where unknown)."""
        if not len(genotypes):
            return np.empty(0), np.empty(0)
        if isinstance(self.readout_, AnchoredRidge):
            prediction = self.readout_.predict(*self.panel(genotypes))
            return prediction, np.full(len(genotypes), np.nan)
        if self.readout_ is not None:
            records = self.features(genotypes)
            return self.readout_.predict(records, self.combined_scores(records))
        scores = self.dish_scores(genotypes)[self.kept_]
        unknown = np.full(len(genotypes), np.nan)
        if len(scores) == 1:
            return scores[0], unknown
        # average rank over dishes; a motif diverging in every dish keeps the worst score
        return np.mean([rankdata(s) for s in scores], axis=0), unknown

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        keys, rows = self.cache_.items()
        return {
            "seed": self.seed,
            "options": dict(self.options),
            "dishes": [
                {"seed": d.seed, **{k: v.cpu().numpy() for k, v in d.data.items()}}
                for d in self.dishes_
            ],
            "history": [list(h) for h in self.history_],
            "signs": list(self.signs_),
            "kept": list(self.kept_),
            "readout": None if self.readout_ is None else self.readout_.state_dict(),
            "records": {"identity": self.cache_.identity, "keys": keys, "rows": rows},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def settings(options: dict[str, Any]) -> dict[str, Any]:
            # where and in what chunks the dish computes does not change what it learned
            return {k: v for k, v in options.items() if k not in _NOT_IN_RECORDS[:3]}

        if settings(state["options"]) != settings(self.options) or state["seed"] != self.seed:
            raise ValueError("state was saved by a Petri dish surrogate with other options")
        for dish, saved in zip(self.dishes_, state["dishes"], strict=True):
            dish.data = {
                k: torch.as_tensor(saved[k], dtype=dish.dtype, device=dish.device).clone()
                for k in dish.data
            }
        self.history_ = [list(h) for h in state["history"]]
        self.signs_ = [float(v) for v in state["signs"]]
        self.kept_ = [int(i) for i in state["kept"]]
        if self.readout_ is not None:
            self.readout_.load_state_dict(state["readout"])
        records = state["records"]
        if records["identity"] is not None:
            self.cache_.use(records["identity"])
            self.cache_.add(list(records["keys"]), np.asarray(records["rows"], float))


def _orientation(scores: np.ndarray, targets: np.ndarray) -> float:
    """-1 if low ``scores`` go with high ``targets`` significantly (one-sided Spearman test
    at ``_ORIENT_P``), else +1."""
    both = np.isfinite(scores) & np.isfinite(targets)
    if both.sum() < 3:
        return 1.0
    rho, p = spearmanr(scores[both], targets[both])
    return -1.0 if rho < 0 and p / 2 < _ORIENT_P else 1.0


def default_predict_batch(device: torch.device, dish: str = "rnn") -> int:
    """Motifs trained at once by ``predict`` unless ``predict_batch`` is set: the GPU is
    launch-bound (4,096 motifs at once in 1.8 s against 1.2 s for 512 on an H200,
    docs/results/cuda_h200.md). On a CPU an RNN batch costs as much as its largest motif:
    batches of 32 length-sorted NAS-Bench-NLP cells train 2.5x faster than batches of 512
    (benchmarks/bench_readout.py); MLP motifs are all one size, so 512."""
    if device.type == "cuda":
        return 4096
    return 32 if dish == "rnn" else 512


def _clip_per_dish(tensors: list[torch.Tensor], members: int) -> None:
    """Scale each dish's share of the gradients (leading dimension when ``members`` > 1)
    to a norm of at most ``_GRAD_CLIP``, so the dishes stay independent."""
    grads = [x.grad.view(members, -1) for x in tensors]
    norms = torch.sqrt(sum(g.pow(2).sum(dim=1) for g in grads))
    scale = torch.clamp(_GRAD_CLIP / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale[:, None])
