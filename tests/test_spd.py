"""The Synthetic Petri Dish surrogate and the batched cells it trains motifs with."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from surrogate_helpers import BAD, ExplodingSpace, known_objective, motifs, petri_dish

import evo_nas
from evo_nas_common import statefile
from search_spaces import SearchSpace, get_space
from search_spaces.base import StackedCells
from search_spaces.darts_rnn import DartsRNNSpace
from search_spaces.nasbench_nlp_batch import NasBenchNLPCellBatch
from search_spaces.nasbench_nlp_graph import topological_order
from surrogates import SURROGATES
from surrogates.mlp_dish import MLPDishOptions
from surrogates.rnn_dish import RNNDishOptions
from surrogates.spd import PetriDishSurrogate

#: one dish small enough for tests: 4-node cells, hidden 4, 5 inner steps, ranked by its own
#: scores (tests/test_dish_readout.py covers the read-out); on the CPU, whose kernels are
#: deterministic (the thresholds and exact equalities below rely on it; the CUDA tests at the
#: end compare the two devices)
TINY = dict(
    device="cpu",
    readout="none",
    dishes=1,
    samples=8,
    val_samples=8,
    steps=6,
    dims=4,
    input_size=4,
    hidden_size=4,
    inner_steps=5,
    inner_lr=0.1,
    meta_lr=0.1,
)


@pytest.mark.parametrize("output", ["all", "loose_ends"])
def test_batched_darts_cells_match_the_per_motif_cells(output):
    space = DartsRNNSpace(output=output)
    genotypes = motifs(space, 6)
    batch = space.build_cell_batch(genotypes, 5, 4, seed=3).double()
    x = torch.randn(7, 6, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = batch(x)
    assert out.shape == (7, 6, 3, 4)
    for m, g in enumerate(genotypes):
        cell = space.build_cell(g, 5, 4).double()
        with torch.no_grad():
            cell.w0.copy_(batch.w0[m])
            cell.ws.copy_(batch.ws[m])
        ref, _ = cell(x[:, m], cell.init_state(3))
        torch.testing.assert_close(out[:, m], ref, rtol=1e-12, atol=1e-12)


def test_seeded_batches_start_every_motif_from_the_same_weights():
    space = DartsRNNSpace()
    a = space.build_cell_batch(motifs(space, 3), 4, 4, seed=7)
    b = space.build_cell_batch(motifs(space, 5, seed=1), 4, 4, seed=7)
    assert torch.equal(a.w0[0], a.w0[2]) and torch.equal(a.w0[0], b.w0[4])
    assert torch.equal(a.ws[1], b.ws[0])
    assert not torch.equal(a.w0[0], space.build_cell_batch(motifs(space, 1), 4, 4, seed=8).w0[0])


def test_default_build_cell_batch_stacks_the_space_cells():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 3)
    batch = SearchSpace.build_cell_batch(space, genotypes, 4, 5, seed=2)
    assert isinstance(batch, StackedCells) and batch.num_motifs == 3
    # same seed -> every motif's cell starts from the same weights
    assert torch.equal(batch.cells[0].w0, batch.cells[2].w0)
    x = torch.randn(4, 3, 2, 4)
    out = batch(x)
    for m, cell in enumerate(batch.cells):
        torch.testing.assert_close(out[:, m], cell(x[:, m], cell.init_state(2))[0])


@pytest.mark.parametrize(
    ("loss", "task", "score"),
    [("rank", "labels", "val"), ("mse", "labels", "val"), ("rank", "bigram", "train")],
)
def test_meta_gradient_matches_finite_differences(loss, task, score):
    space = DartsRNNSpace(nodes=3, activations=("tanh", "sigmoid", "identity"))
    genotypes = motifs(space, 5)
    opts = dict(TINY, samples=3, val_samples=2, steps=4, dims=2, hidden_size=3, inner_steps=3)
    opts.update(loss=loss, task=task, score=score)
    spd = petri_dish(space, seed=0, precision="float64", **opts)
    dish = spd.dishes_[0]
    assert sorted(dish.data) == ["x_train", "x_val"]
    # one diverged motif (inf) takes part as "worse than every finite one"
    targets = spd._targets([3.0, 1.0, np.inf, 2.0, 5.0])
    data = {k: v.clone().requires_grad_(True) for k, v in dish.data.items()}
    spd.meta_loss(dish, genotypes, targets, data).backward()
    rng = np.random.default_rng(0)
    # Adam's first steps are nearly sign(g): the loss is sharply curved, so a small step
    eps = 1e-7
    for name, x in dish.data.items():
        assert data[name].grad.abs().sum() > 0  # x_val too: scored, or held by the L2 penalty
        for _ in range(4):
            idx = tuple(int(rng.integers(s)) for s in x.shape)
            values = []
            for sign in (1, -1):
                xp = x.clone()
                xp[idx] += sign * eps
                with torch.no_grad():
                    moved = {**dish.data, name: xp}
                    values.append(float(spd.meta_loss(dish, genotypes, targets, moved)))
            fd = (values[0] - values[1]) / (2 * eps)
            assert data[name].grad[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-7)


@pytest.mark.parametrize(("task", "score"), [("labels", "val"), ("bigram", "val")])
def test_fit_drives_the_training_rank_correlation_up(task, score):
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 16)
    y = known_objective(genotypes)
    opts = dict(TINY, task=task, orient=False, score=score)
    before = spearmanr(petri_dish(space, seed=0, meta_steps=0, **opts).predict(genotypes), y)
    spd = petri_dish(space, seed=0, meta_steps=20, **opts).fit(genotypes, y)
    after = spearmanr(spd.predict(genotypes), y)
    assert after[0] > before[0] + 0.3 and after[0] > 0.7
    assert spd.history_[0][-1] < spd.history_[0][0]


@pytest.mark.parametrize("name", ["darts_rnn", "nasbench_nlp"])
def test_batched_and_one_at_a_time_predictions_agree(name):
    space = get_space(name)
    genotypes = motifs(space, 8)
    if name == "nasbench_nlp":  # a motif's weights must not depend on its batch's longest
        assert len({len(topological_order(g)) for g in genotypes}) > 2
    spd = petri_dish(space, seed=1, precision="float64", **TINY)
    together = spd.predict(genotypes)
    alone = np.array([spd.predict([g])[0] for g in genotypes])
    np.testing.assert_allclose(together, alone, rtol=1e-10)
    chunked = petri_dish(space, seed=1, precision="float64", predict_batch=3, **TINY)
    np.testing.assert_allclose(chunked.predict(genotypes), together, rtol=1e-10)


def test_same_seed_same_predictions_other_seed_other_dish():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 12)
    y = known_objective(genotypes)

    def fitted(seed: int) -> np.ndarray:
        spd = petri_dish(space, seed=seed, meta_steps=3, meta_batch=8, **TINY)
        return spd.fit(genotypes, y).predict(genotypes)

    first = fitted(5)
    np.testing.assert_array_equal(first, fitted(5))
    assert not np.allclose(first, fitted(6))


def test_a_motif_diverging_in_the_dish_gets_the_worst_score():
    space = ExplodingSpace(nodes=3)
    genotypes = motifs(space, 6)
    genotypes[3] = BAD
    spd = petri_dish(space, seed=0, meta_steps=2, **dict(TINY, inner_steps=3))
    y = known_objective(genotypes)
    y[4] = np.inf  # a diverged ground truth in the training set too
    spd.fit(genotypes, y)  # must not raise
    assert all(torch.isfinite(t).all() for t in spd.dishes_[0].data.values())
    pred = spd.predict(genotypes)
    assert pred[3] == np.inf and np.isfinite(np.delete(pred, 3)).all()
    ensemble = petri_dish(space, seed=0, meta_steps=0, **dict(TINY, dishes=3))
    ranks = ensemble.predict(genotypes)
    assert ranks[3] == ranks.max() == len(genotypes) and np.isfinite(ranks).all()


def test_fit_reports_each_meta_step_of_the_current_fit():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 8)
    spd = petri_dish(space, seed=0, meta_steps=3, **dict(TINY, dishes=2))
    events: list[dict] = []
    spd.progress = events.append
    spd.fit(genotypes, known_objective(genotypes))
    spd.fit(genotypes, known_objective(genotypes))  # a warm-started refit counts afresh
    steps = [(e["dish"], e["step"], e["steps"]) for e in events if e["event"] == "meta_step"]
    assert steps == 2 * [(d, k, 3) for d in (1, 2) for k in (1, 2, 3)]
    assert [len(h) for h in spd.history_] == [6, 6]  # the history keeps every step
    assert events[-1]["loss"] == spd.history_[1][-1]


def test_state_round_trip_restores_the_learned_samples():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 12)
    opts = dict(TINY, meta_steps=3, dishes=2, task="labels")
    opts["score"] = "val"  # every learnable tensor is read, so every one moves
    spd = petri_dish(space, seed=2, **opts)
    spd.fit(genotypes, known_objective(genotypes))
    state = statefile.loads(statefile.dumps(spd.state_dict()))
    fresh = petri_dish(space, seed=2, **opts)
    for name, tensor in fresh.dishes_[0].data.items():  # every learnable tensor moved
        assert not torch.equal(tensor, spd.dishes_[0].data[name])
    assert not np.array_equal(fresh.predict(genotypes), spd.predict(genotypes))
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.predict(genotypes), spd.predict(genotypes))
    assert fresh.history_ == spd.history_
    # another device or chunk size computes the same dish
    elsewhere = petri_dish(space, seed=2, **dict(opts, device="auto", predict_batch=5))
    elsewhere.load_state_dict(state)
    np.testing.assert_array_equal(elsewhere.predict(genotypes), spd.predict(genotypes))
    other = petri_dish(space, seed=2, **dict(opts, hidden_size=5))
    with pytest.raises(ValueError, match="other options"):
        other.load_state_dict(state)
    # a state saved with an option since removed (input_gain) is refused in one line: the
    # engine refits the surrogate on the results so far
    older = {**state, "options": {**state["options"], "input_gain": 1.0}}
    with pytest.raises(ValueError, match="other options"):
        fresh.load_state_dict(older)


def test_bigram_labels_follow_the_previous_and_the_current_token():
    space = DartsRNNSpace(nodes=4)
    spd = petri_dish(space, seed=3, **dict(TINY, task="bigram", vocab=3, classes=5))
    dish = spd.dishes_[0]
    label: dict[tuple[bytes, bytes], int] = {}
    vectors = set()
    for split in ("train", "val"):
        x, y = dish.data[f"x_{split}"], getattr(dish, f"y_{split}")
        assert x.shape == (8, 6, 4) and y.shape == (8, 6)
        for s in range(x.shape[0]):
            vectors.update(x[s, t].numpy().tobytes() for t in range(x.shape[1]))
            for t in range(1, x.shape[1]):
                pair = (x[s, t - 1].numpy().tobytes(), x[s, t].numpy().tobytes())
                assert label.setdefault(pair, int(y[s, t])) == int(y[s, t])
    # inputs are the embeddings of 3 tokens; the labels are not constant
    assert len(vectors) == 3 and len(set(label.values())) > 1


def test_train_score_is_the_training_loss_after_training():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 4)
    opts = dict(TINY, task="bigram")
    on_train = petri_dish(space, seed=1, score="train", **opts).dishes_[0]
    on_val = petri_dish(space, seed=1, score="val", **opts).dishes_[0]
    val_scores = on_val.scores(genotypes)
    assert not torch.allclose(on_train.scores(genotypes), val_scores)
    # the same dish, validated on its own training samples, gives the train score
    moved = {**on_val.data, "x_val": on_val.data["x_train"]}
    on_val.y_val = on_val.y_train
    torch.testing.assert_close(on_train.scores(genotypes), on_val.scores(genotypes, moved))


def test_registry_and_option_errors():
    space = DartsRNNSpace(nodes=4)
    own = {k: TINY[k] for k in ("device",)}
    dish = {"kind": "rnn", **{k: v for k, v in TINY.items() if k not in own}}
    spd = SURROGATES.create("spd", space=space, seed=0, dish=dish, **own)
    assert isinstance(spd, PetriDishSurrogate) and spd.predict([]).shape == (0,)
    assert isinstance(spd.dish, RNNDishOptions) and spd.dish.inner_steps == 5
    # refused by the dish kind's type, one line naming the option, as a config writes it ...
    for bad, message in (
        ({"hidden_size": 0}, "dish.rnn.hidden_size: Input should be greater than or equal to 1"),
        ({"dishes": 2**31}, "dish.rnn.dishes: Input should be less than or equal to 1024"),
        ({"meta_steps": -1}, "dish.rnn.meta_steps: Input should be greater than or equal to 0"),
        ({"task": "recall"}, "dish.rnn.task: Input should be 'labels' or 'bigram'"),
        ({"meta_lr": 0.0}, "dish.rnn.meta_lr: Input should be greater than 0"),
        ({"loss": "hinge"}, "dish.rnn.loss: Input should be 'rank' or 'mse'"),
        ({"readout": "forest"}, "dish.rnn.readout: Input should be 'ridge', 'gp' or 'none'"),
        ({"vocab": 0}, "dish.rnn.vocab: Input should be greater than or equal to 1"),
        ({"score": "test"}, "dish.rnn.score: Input should be 'val' or 'train'"),
        ({"inner_steps": True}, "dish.rnn.inner_steps: Input should be a valid integer"),
        ({"layers": 2}, "dish.rnn.layers: unknown key"),
    ):
        with pytest.raises(evo_nas.ConfigError) as err:
            evo_nas.build("surrogate", "spd", {"dish": {**dish, **bad}}, space=space, seed=0)
        assert str(err.value).startswith(f"surrogate.options.{message}"), str(err.value)
    # ... and in Python
    with pytest.raises(ValueError, match="dish.hidden_size: Input should be greater than"):
        PetriDishSurrogate(space, dish={**dish, "hidden_size": 0})
    with pytest.raises(ValueError, match="readout"):
        MLPDishOptions(readout="gp")
    with pytest.raises(ValueError, match="'abacus' is not a torch device"):
        petri_dish(space, **dict(TINY, device="abacus"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            petri_dish(space, **dict(TINY, device="cuda"))
    # the MLP dish has no sequence options: set, they are refused rather than ignored
    with pytest.raises(ValueError, match="dish.steps: unknown key"):
        petri_dish(space, dish="mlp", steps=4, input_size=4, readout="gp")


def _nlp_weights_into_cell(batch, m: int, cell, genotype) -> None:
    """Copy motif ``m``'s weights of a NasBenchNLPCellBatch into a NasBenchNLPCell."""
    hsz = cell.hidden_size
    spec = {n: (op, ins) for n, op, ins in genotype}
    position = {n: k for k, n in enumerate(topological_order(genotype))}
    linears = [n for n in position if spec[n][0] == "linear"]
    x_seen, h_seen = 0, {}
    with torch.no_grad():
        for j, n in enumerate(linears):
            k = position[n]
            cell.bias[j].copy_(batch.bias[m, k])
            for i, src in enumerate(spec[n][1]):
                if src == "x":
                    cell.w_x[:, x_seen * hsz : (x_seen + 1) * hsz].copy_(batch.w_x[m, k, i])
                    x_seen += 1
                else:
                    b = h_seen.get(src, 0)
                    h_seen[src] = b + 1
                    w = cell.w_h[cell.sources.index(src)]
                    w[:, b * hsz : (b + 1) * hsz].copy_(batch.w_h[m, k, i])


@pytest.mark.parametrize("input_size", [4, 5])
def test_batched_nasbench_nlp_cells_match_the_per_motif_cells(input_size):
    space = get_space("nasbench_nlp")
    genotypes = motifs(space, 6) + [space.validate(n) for n in ("lstm", "gru", "rnn")]
    batch = NasBenchNLPCellBatch(genotypes, input_size, 4, seed=1).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, len(genotypes), 3, input_size, dtype=torch.float64, generator=gen)
    out = batch(x)
    assert torch.equal(batch.w_h[0], batch.w_h[5])  # one seeded draw for every motif
    probe = torch.randn(out.shape, dtype=torch.float64, generator=gen)
    (out * probe).sum().backward()  # plain autograd through the batched cells
    for m, g in enumerate(genotypes):
        cell = space.build_cell(g, input_size, 4).double()
        _nlp_weights_into_cell(batch, m, cell, g)
        x_m = x[:, m].clone().requires_grad_(True)
        ref, _ = cell(x_m, cell.init_state(3))
        torch.testing.assert_close(out[:, m], ref, rtol=1e-10, atol=1e-12)
        # the cell's gradients (recurrent weights: one product per pass) equal autograd's
        (ref * probe[:, m]).sum().backward()
        grads = SimpleNamespace(bias=batch.bias.grad, w_x=batch.w_x.grad, w_h=batch.w_h.grad)
        expected = space.build_cell(g, input_size, 4).double()
        _nlp_weights_into_cell(grads, m, expected, g)
        for (name, p), want in zip(cell.named_parameters(), expected.parameters(), strict=True):
            got = torch.zeros_like(p) if p.grad is None else p.grad  # not reaching the output
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


def test_fit_orients_a_dish_that_ranks_inversely():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 10)
    raw = petri_dish(space, seed=0, meta_steps=0, **TINY).predict(genotypes)
    inverse = np.exp(-raw)  # the ground truth ranks exactly against the dish
    spd = petri_dish(space, seed=0, meta_steps=0, **TINY).fit(genotypes, inverse)
    assert spd.signs_ == [-1.0]
    assert spearmanr(spd.predict(genotypes), inverse)[0] == pytest.approx(1.0)
    # the outer loss of the oriented scores is small, of the raw (inverse) ones large
    assert spd.ranking_loss(spd.predict(genotypes), inverse) < 0.1
    assert spd.ranking_loss(raw, inverse) > spd.ranking_loss(-raw, inverse) + 0.5
    kept = petri_dish(space, seed=0, meta_steps=0, orient=False, **TINY)
    assert spearmanr(kept.fit(genotypes, inverse).predict(genotypes), inverse)[0] < -0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize(
    ("task", "loss"), [("bigram", "rank"), ("labels", "rank"), ("bigram", "mse")]
)
def test_a_cuda_dish_fits_and_predicts_as_the_cpu_dish(task, loss):
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 24)
    y = known_objective(genotypes)
    opts = dict(TINY, task=task, loss=loss, meta_steps=4, meta_batch=12, precision="float64")
    cpu = petri_dish(space, seed=3, **opts).fit(genotypes, y)
    gpu = petri_dish(space, seed=3, **dict(opts, device="cuda")).fit(genotypes, y)
    assert all(t.is_cuda for t in gpu.dishes_[0].data.values())
    np.testing.assert_allclose(gpu.predict(genotypes), cpu.predict(genotypes), rtol=1e-6)
    # a dish fitted on the GPU loads into a CPU surrogate and predicts the same there
    moved = petri_dish(space, seed=3, **opts)
    moved.load_state_dict(statefile.loads(statefile.dumps(gpu.state_dict())))
    np.testing.assert_allclose(moved.predict(genotypes), gpu.predict(genotypes), rtol=1e-6)
