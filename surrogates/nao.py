"""NAO-style encoder-predictor(-decoder) surrogate, with NAO's generator (Luo et al. 2018).

The genotype is read as the token sequence its space gives (``space.tokens``), so the same
code serves every registered space. Defaults follow NAO's PTB settings: embedding and LSTM
hidden size 96, a 3 x 200 ReLU predictor with dropout 0.1, loss 0.8 x predictor MSE + 0.2 x
reconstruction cross-entropy, Adam lr 1e-3, weight decay 1e-4, gradient norm clipped at 5.

Targets: diverged or failed cells (objective ``inf``) are clipped to the worst finite value
of the training set (:func:`surrogates.base.finite_targets`); then the objective is optionally
log-transformed (``target="log"``, the default: perplexities span orders of magnitude) or
replaced by its rank (``target="rank"``) and min-max normalised to [0, 1], as NAO does with
accuracies. Predictions are on that normalised scale (lower = predicted better).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

from evo_nas_common.devices import resolve_device
from search_spaces import Genotype, GenotypeError, SearchSpace
from surrogates.base import Capabilities, Surrogate, finite_targets
from surrogates.nao_model import EOS, N_SPECIAL, PAD, SOS, NAOModel


class NAOSurrogate(Surrogate):
    """Encoder-predictor surrogate; :meth:`generate` proposes genotypes by NAO's gradient step.

    Training holds out ``holdout`` of the genotypes (at least 2 when there are 8 or more) and
    stops when their loss has not improved for ``patience`` epochs, keeping the best weights;
    with fewer genotypes it trains all ``epochs`` on everything. ``stop_on="mse"`` (default)
    watches the predictor's MSE: a pure predictor, cheap to refit. ``"loss"`` watches the whole
    training loss, so the decoder keeps learning for far longer: use it (or ``holdout=0`` and
    fixed ``epochs``) when :meth:`generate` is wanted, whose decodes are mostly invalid from
    an early-stopped decoder. With ``augment`` every
    sequence of ``space.equivalent_tokens(g)`` is a training item and predictions average them.
    """

    capabilities = Capabilities(generates=True)  # NAO's gradient-step generator

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        embedding: int = 96,
        hidden: int = 96,
        mlp_layers: int = 3,
        mlp_hidden: int = 200,
        dropout: float = 0.1,
        decoder: bool = True,
        trade_off: float = 0.8,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        grad_bound: float = 5.0,
        epochs: int = 1000,
        batch_size: int = 100,
        holdout: float = 0.1,
        patience: int = 50,
        stop_on: Literal["loss", "mse"] = "mse",
        augment: bool = True,
        target: Literal["minmax", "log", "rank"] = "log",
        gen_step: float = 1.0,
        gen_max_steps: int = 100,
        device: str = "cpu",
    ) -> None:
        super().__init__(space, seed)
        self.options = dict(
            embedding=embedding,
            hidden=hidden,
            mlp_layers=mlp_layers,
            mlp_hidden=mlp_hidden,
            dropout=dropout,
            decoder=decoder,
        )
        self.trade_off = trade_off if decoder else 1.0
        self.lr, self.weight_decay, self.grad_bound = lr, weight_decay, grad_bound
        self.epochs, self.batch_size = epochs, batch_size
        self.holdout, self.patience, self.stop_on = holdout, patience, stop_on
        self.augment, self.target = augment, target
        self.gen_step, self.gen_max_steps = gen_step, gen_max_steps
        self._check_options(trade_off)
        self.device = resolve_device(device)
        self.vocab = {tok: i + N_SPECIAL for i, tok in enumerate(space.vocabulary())}
        self.itos = {i: tok for tok, i in self.vocab.items()}
        self.model_: NAOModel | None = None
        self.max_len_ = 0
        self.position_: np.ndarray | None = None  # [max_len + 1, n_tokens]: seen at position t
        self.follows_: np.ndarray | None = None  # [n_tokens, n_tokens]: b seen right after a
        self.train_keys_: set[str] = set()
        self.history_: dict[str, Any] = {}

    def _check_options(self, trade_off: float) -> None:
        """Raise ValueError naming the first option out of its range.

        ``trade_off`` is the one asked for: without a decoder the stored one is 1.
        """
        for name, value in (
            ("embedding", self.options["embedding"]),
            ("hidden", self.options["hidden"]),
            ("mlp_hidden", self.options["mlp_hidden"]),
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("patience", self.patience),
            ("gen_max_steps", self.gen_max_steps),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.options["mlp_layers"] < 0:
            raise ValueError(f"mlp_layers must be at least 0, got {self.options['mlp_layers']}")
        if not 0.0 <= self.options["dropout"] < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.options['dropout']}")
        if not 0.0 <= trade_off <= 1.0:
            raise ValueError(f"trade_off must be in [0, 1], got {trade_off}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_bound <= 0 or self.gen_step <= 0:
            raise ValueError("lr, grad_bound and gen_step must be > 0 and weight_decay >= 0")
        if self.stop_on not in ("loss", "mse"):
            raise ValueError(f"stop_on must be 'loss' or 'mse', got '{self.stop_on}'")
        if self.target not in ("minmax", "log", "rank"):
            raise ValueError(f"target must be 'minmax', 'log' or 'rank', got '{self.target}'")

    # -- encoding ------------------------------------------------------------------------------
    def _ids(self, tokens: Sequence[str]) -> list[int]:
        try:
            return [self.vocab[t] for t in tokens]
        except KeyError as e:
            raise ValueError(f"token {e.args[0]!r} is not in the space's vocabulary") from None

    def _sequences(self, genotype: Genotype) -> list[list[int]]:
        seqs = [self.space.tokens(genotype)]
        if self.augment:
            seqs += self.space.equivalent_tokens(genotype)
        return [list(s) for s in sorted({tuple(self._ids(s)) for s in seqs})]

    def _pad(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return out.to(self.device)

    def _normalise(self, objectives: Sequence[float]) -> np.ndarray:
        y = finite_targets(objectives)
        if self.target == "log":
            if (y <= 0).any():
                raise ValueError("target='log' needs positive objectives; use 'minmax' or 'rank'")
            y = np.log(y)
        elif self.target == "rank":
            y = scipy.stats.rankdata(y)
        span = y.max() - y.min()
        return (y - y.min()) / span if span > 0 else np.zeros_like(y)

    # -- training ------------------------------------------------------------------------------
    def _rng_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> NAOSurrogate:
        if len(genotypes) != len(objectives):
            raise ValueError(f"{len(genotypes)} genotypes but {len(objectives)} objectives")
        if not genotypes:
            raise ValueError("fit needs at least one genotype")
        y = self._normalise(objectives)
        seqs = [self._sequences(g) for g in genotypes]
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(genotypes))
        n_val = max(2, round(self.holdout * len(genotypes))) if self.holdout > 0 else 0
        if len(genotypes) < 8:
            n_val = 0
        val_idx, train_idx = order[:n_val], order[n_val:]

        items = [(s, y[i]) for i in train_idx for s in seqs[i]]
        all_seqs = [s for ss in seqs for s in ss]
        self.max_len_ = max(len(s) for s in all_seqs)
        n_tokens = N_SPECIAL + len(self.vocab)
        self.position_ = np.zeros((self.max_len_ + 1, n_tokens), dtype=bool)
        self.follows_ = np.zeros((n_tokens, n_tokens), dtype=bool)
        for s in all_seqs:
            self.position_[np.arange(len(s) + 1), s + [EOS]] = True
            self.follows_[[SOS] + s, s + [EOS]] = True
        self.train_keys_ = {self.space.key(g) for g in genotypes}

        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.seed)
            model = NAOModel(N_SPECIAL + len(self.vocab), **self.options).to(self.device)
            val_items = [(s, y[i]) for i in val_idx for s in seqs[i]]
            self.history_ = self._train(model, items, val_items, rng)
        self.model_ = model.eval()
        return self

    def _loss(
        self, model: NAOModel, batch: list[tuple[list[int], float]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training loss (MSE traded off against reconstruction) and the predictor MSE."""
        src = self._pad([s for s, _ in batch])
        target = torch.tensor([t for _, t in batch], dtype=torch.float32, device=self.device)
        enc_out, mask = model.encode(src)
        arch = model.embed(enc_out, mask)
        mse = loss = F.mse_loss(model.predict_from(arch), target)
        if self.trade_off < 1.0:
            dec_target = self._pad([s + [EOS] for s, _ in batch])
            dec_in = self._pad([[SOS] + s for s, _ in batch])
            logits = model.decode_logits(enc_out, mask, arch, dec_in)
            ce = F.cross_entropy(logits.flatten(0, 1), dec_target.flatten(), ignore_index=PAD)
            loss = self.trade_off * mse + (1.0 - self.trade_off) * ce
        return loss, mse

    def _train(
        self,
        model: NAOModel,
        items: list[tuple[list[int], float]],
        val_items: list[tuple[list[int], float]],
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, best_epoch, epoch = float("inf"), None, 0, 0
        for epoch in range(1, self.epochs + 1):
            model.train()
            perm = rng.permutation(len(items))
            for start in range(0, len(items), self.batch_size):
                batch = [items[i] for i in perm[start : start + self.batch_size]]
                opt.zero_grad()
                self._loss(model, batch)[0].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_bound)
                opt.step()
            if not val_items:
                continue
            with torch.no_grad():
                val_loss, val_mse = self._loss(model.eval(), val_items)
            score = float(val_loss if self.stop_on == "loss" else val_mse)
            if score < best:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= self.patience:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        return {
            "items": len(items),
            "epochs": epoch,
            "best_epoch": best_epoch or epoch,
            f"val_{self.stop_on}": best,
        }

    # -- prediction ----------------------------------------------------------------------------
    @torch.no_grad()
    def _predict_seqs(self, model: NAOModel, seqs: list[list[list[int]]]) -> np.ndarray:
        flat = [s for ss in seqs for s in ss]
        preds = []
        for start in range(0, len(flat), 1024):
            enc_out, mask = model.encode(self._pad(flat[start : start + 1024]))
            preds.append(model.predict_from(model.embed(enc_out, mask)).cpu().numpy())
        values = np.concatenate(preds).astype(float)
        counts = np.array([len(ss) for ss in seqs])
        return np.add.reduceat(values, np.cumsum(counts) - counts) / counts

    def _fitted(self) -> NAOModel:
        if self.model_ is None:
            raise RuntimeError("NAOSurrogate is not fitted: call fit() or load_state_dict() first")
        return self.model_

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        model = self._fitted()
        if not genotypes:
            return np.empty(0)
        return self._predict_seqs(model, [self._sequences(g) for g in genotypes])

    # -- generator -----------------------------------------------------------------------------
    def generate(
        self, seeds: Sequence[Genotype], n: int, rng: np.random.Generator
    ) -> tuple[list[Genotype], dict[str, int]]:
        """Up to ``n`` new valid genotypes from NAO's gradient step on the seeds' encodings.

        The seeds' encoder outputs move against the gradient of the predicted objective with
        step sizes ``gen_step * k`` for ``k = 1, 2, ...`` (up to ``gen_max_steps``) until ``n``
        genotypes not in the training set nor among the seeds are decoded. A greedy decode that
        ``space.from_tokens`` rejects is decoded again with every step restricted to the tokens
        seen at that position in training that were also seen following the previous token
        (or, when there is none, the latter alone): a grammar learned from the training
        sequences. Valid then counts as ``repaired``, still invalid as ``dropped``. ``rng``
        shuffles the seeds, which decides the candidates kept when one step gives more than
        needed.
        """
        model = self._fitted()
        if not self.options["decoder"]:
            raise ValueError("generate needs the decoder: construct NAOSurrogate(decoder=True)")
        stats = {"decoded": 0, "valid": 0, "repaired": 0, "dropped": 0, "duplicates": 0, "steps": 0}
        if n <= 0 or not seeds:
            return [], stats
        seeds = [seeds[i] for i in rng.permutation(len(seeds))]
        known = self.train_keys_ | {self.space.key(g) for g in seeds}
        enc_out, mask, grad = self._objective_gradient(model, seeds)
        grammar = self._grammar()
        found: list[Genotype] = []
        for k in range(1, self.gen_max_steps + 1):
            stats["steps"] = k
            # lower predicted objective is better; NAO re-normalises the moved outputs
            new_out = F.normalize(enc_out - self.gen_step * k * grad, p=2, dim=-1)
            for g in self._decode_valid(model, new_out, mask, grammar, stats):
                key = self.space.key(g)
                if key in known:
                    stats["duplicates"] += 1
                    continue
                known.add(key)
                found.append(g)
                if len(found) == n:
                    return found, stats
        return found, stats

    def _objective_gradient(
        self, model: NAOModel, seeds: Sequence[Genotype]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The seeds' encoder outputs, their mask and the gradient of the predicted objective.

        The gradient is that of the seeds' summed prediction with respect to the outputs.
        """
        src = self._pad([self._ids(self.space.tokens(g)) for g in seeds])
        with torch.no_grad():
            enc_out, mask = model.encode(src)
        enc_out.requires_grad_(True)
        predicted = model.predict_from(model.embed(enc_out, mask)).sum()
        (grad,) = torch.autograd.grad(predicted, enc_out)
        return enc_out.detach(), mask, grad

    def _grammar(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens seen at each position and those seen following each token in training."""
        position = torch.as_tensor(self.position_, device=self.device)
        follows = torch.as_tensor(self.follows_, device=self.device)
        return position, follows

    def _decode_valid(
        self,
        model: NAOModel,
        new_out: torch.Tensor,
        mask: torch.Tensor,
        grammar: tuple[torch.Tensor, torch.Tensor],
        stats: dict[str, int],
    ) -> Iterator[Genotype]:
        """The valid genotypes decoded from the moved encoder outputs, in batch order.

        A greedy decode the space rejects is decoded again under ``grammar`` (see
        :meth:`generate`); that decode runs at most once per batch, when first needed. Counts
        ``decoded``, ``valid``, ``repaired`` and ``dropped`` in ``stats`` as the caller consumes
        the genotypes, so a caller that stops early leaves the rest of the batch uncounted.
        """
        arch = model.embed(new_out, mask)
        greedy = model.greedy_decode(new_out, mask, arch, self.max_len_)
        masked = None
        for b, ids in enumerate(greedy):
            stats["decoded"] += 1
            g = self._decode(ids)
            if g is not None:
                stats["valid"] += 1
            else:
                if masked is None:
                    masked = model.greedy_decode(new_out, mask, arch, self.max_len_, *grammar)
                g = self._decode(masked[b])
                stats["repaired" if g is not None else "dropped"] += 1
            if g is not None:
                yield g

    def _decode(self, ids: list[int]) -> Genotype | None:
        try:
            return self.space.from_tokens([self.itos[i] for i in ids])
        except GenotypeError:
            return None

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        model = self._fitted()
        return {
            "seed": self.seed,
            "options": dict(self.options),
            "vocab": list(self.vocab),
            "model": {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()},
            "max_len": self.max_len_,
            "position": self.position_.copy(),
            "follows": self.follows_.copy(),
            "train_keys": sorted(self.train_keys_),
            "history": dict(self.history_),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["options"] != self.options or state["vocab"] != list(self.vocab):
            raise ValueError("state was saved by an NAOSurrogate with other options or vocabulary")
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten
            model = NAOModel(N_SPECIAL + len(self.vocab), **self.options)
        model.load_state_dict({k: torch.as_tensor(v) for k, v in state["model"].items()})
        self.model_ = model.to(self.device).eval()
        self.seed = int(state["seed"])
        self.max_len_ = int(state["max_len"])
        self.position_ = np.array(state["position"], dtype=bool)
        self.follows_ = np.array(state["follows"], dtype=bool)
        self.train_keys_ = set(state["train_keys"])
        self.history_ = dict(state["history"])
