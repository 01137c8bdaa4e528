"""The Petri dish's records of its inner training and the read-out learned from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from surrogate_helpers import BAD, ExplodingSpace, known_objective, motifs, petri_dish

from evo_nas_common import statefile
from search_spaces import get_space
from search_spaces.darts_rnn import DartsRNNSpace
from search_spaces.pool import PoolSpace
from surrogates.readout import ResidualGP
from surrogates.rnn_dish import RNNDish

#: a small dish ranked by its GP read-out (tests/test_panel_readout.py: the default, ridge)
SMALL = dict(
    device="cpu",
    readout="gp",
    samples=8,
    val_samples=4,
    steps=5,
    dims=4,
    input_size=4,
    hidden_size=4,
    inner_steps=4,
    inner_lr=0.1,
)


@pytest.mark.parametrize("name", ["darts_rnn", "nasbench_nlp"])
def test_records_are_seeded_and_the_same_batched_or_one_at_a_time(name):
    space = get_space(name)
    genotypes = motifs(space, 7)
    spd = petri_dish(space, seed=3, dishes=2, precision="float64", **SMALL)
    records = spd.features(genotypes)
    assert records.shape == (7, len(spd.feature_names())) == (7, 2 * (3 * 4 + 2))
    again = petri_dish(space, seed=3, dishes=2, precision="float64", **SMALL)
    alone = np.concatenate([again.features([g]) for g in genotypes])
    np.testing.assert_allclose(alone, records, rtol=1e-10)
    other = petri_dish(space, seed=4, dishes=2, precision="float64", **SMALL)
    assert not np.allclose(other.features(genotypes), records)
    # the dish's own score is the record's last loss on its score samples
    dish = spd.dishes_[0]
    train_last = spd.feature_names().index("dish0.train_loss_4")
    np.testing.assert_array_equal(records[:, train_last], dish.scores(genotypes).numpy())


def test_the_record_follows_the_inner_training():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 5)
    spd = petri_dish(space, seed=0, dishes=1, precision="float64", **SMALL)
    dish: RNNDish = spd.dishes_[0]
    record = dict(zip(spd.feature_names(), spd.features(genotypes).T, strict=True))
    # before any step every motif starts from the same weights but its own cell
    assert len(set(np.round(record["dish0.train_loss_0"], 12))) > 1
    # four Adam steps at 0.1 on a tiny task: the training loss falls for every motif
    assert (record["dish0.train_loss_4"] < record["dish0.train_loss_0"]).all()
    assert np.isfinite([record[f"dish0.log_grad_norm_{k}"] for k in range(4)]).all()
    # the validation loss is the loss of the same weights on the validation samples
    one = dish.options.__class__(**{**vars(dish.options), "score": "val"})
    on_val = RNNDish(space, dish.seed, one, torch.float64)
    np.testing.assert_allclose(record["dish0.val_loss_4"], on_val.scores(genotypes).numpy())


def test_the_read_out_recovers_a_ranking_that_is_a_known_function_of_the_records():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(260, 5))
    truth = np.tanh(2 * x[:, 0]) + x[:, 1] ** 2  # not monotone, two of five columns
    weak = truth + 4 * rng.normal(size=260)  # a dish score that knows little
    model = ResidualGP(seed=0).fit(x[:60], weak[:60], np.exp(truth[:60]))
    mean, std = model.predict(x[60:], weak[60:])
    assert kendalltau(weak[60:], truth[60:])[0] < 0.3
    assert kendalltau(mean, truth[60:])[0] > 0.7
    assert (std > 0).all() and np.isfinite(std).all()
    # far from every training cell the spread is larger than among them
    _, far = model.predict(x[60:] + 6.0, weak[60:])
    assert far.mean() > std.mean()
    # a dish score that already ranks right is kept, and gains nothing it should not
    ranked = ResidualGP(seed=0).fit(x[:60], truth[:60], np.exp(truth[:60]))
    assert kendalltau(ranked.predict(x[60:], truth[60:])[0], truth[60:])[0] > 0.9


def test_with_no_ground_truth_the_read_out_ranks_as_the_dish_does():
    space = get_space("nasbench_nlp")
    genotypes = motifs(space, 9)
    spd = petri_dish(space, seed=1, dishes=2, **SMALL)
    scores = spd.dish_scores(genotypes)
    mean, std = spd.predict_with_std(genotypes)
    np.testing.assert_array_equal(mean, scores.mean(axis=0))
    assert np.isnan(std).all()
    one = petri_dish(space, seed=1, dishes=1, **SMALL)
    np.testing.assert_array_equal(one.predict(genotypes), one.dishes_[0].scores(genotypes))
    # four cells are too few to learn a correction from: still the dish's own ranking
    one.fit(genotypes[:4], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(one.predict(genotypes), one.dishes_[0].scores(genotypes))


def test_a_fitted_read_out_survives_a_state_round_trip():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 24)
    spd = petri_dish(space, seed=2, dishes=2, **SMALL)
    # an objective the dish half knows: its score plus a known function of the motif
    y = spd.dish_scores(genotypes).mean(axis=0) + 0.1 * known_objective(genotypes)
    spd.fit(genotypes[:16], y[:16])
    assert spd.readout_.fitted_
    mean, std = spd.predict_with_std(genotypes[16:])
    assert np.isfinite(std).all()
    state = statefile.loads(statefile.dumps(spd.state_dict()))
    fresh = petri_dish(space, seed=2, dishes=2, **SMALL)
    fresh.load_state_dict(state)
    again, again_std = fresh.predict_with_std(genotypes[16:])
    np.testing.assert_array_equal(again, mean)
    np.testing.assert_array_equal(again_std, std)


def test_the_read_out_learns_what_the_dish_misses():
    space = DartsRNNSpace(nodes=4)
    genotypes = motifs(space, 70)
    spd = petri_dish(space, seed=0, dishes=1, orient=False, **SMALL)
    records = spd.features(genotypes)
    # an objective the dish's final score does not order, but an early step of it does
    early = records[:, spd.feature_names().index("dish0.val_loss_1")]
    objective = np.exp(early)
    spd.fit(genotypes[:50], objective[:50])
    before = kendalltau(spd.dish_scores(genotypes[50:])[0], objective[50:])[0]
    after = kendalltau(spd.predict(genotypes[50:]), objective[50:])[0]
    assert after > before + 0.2 and after > 0.6


def test_a_motif_diverging_in_the_dish_ranks_last_and_never_raises():
    space = ExplodingSpace(nodes=3)
    genotypes = motifs(space, 12)
    genotypes[3] = BAD
    y = known_objective(genotypes)
    y[5] = np.inf  # a diverged ground truth too
    spd = petri_dish(space, seed=0, dishes=2, **SMALL)
    assert spd.predict(genotypes)[3] == np.inf  # unfitted: the dish's own ranking
    spd.fit(genotypes, y)  # the diverged motif and the diverged cell take part
    pred, std = spd.predict_with_std(genotypes)
    assert pred[3] == np.inf and np.isfinite(np.delete(pred, 3)).all()
    assert np.isnan(std[3]) and np.isfinite(np.delete(std, 3)).all()


def test_a_motif_is_trained_once_per_synthetic_data(tmp_path, monkeypatch):
    space = get_space("nasbench_nlp")
    genotypes = motifs(space, 6)
    trained: list[int] = []
    original = RNNDish.trajectory

    def counting(self, motifs):
        trained.append(len(motifs))
        return original(self, motifs)

    monkeypatch.setattr(RNNDish, "trajectory", counting)
    spd = petri_dish(space, seed=0, dishes=2, feature_cache=tmp_path, **SMALL)
    first = spd.predict(genotypes)
    spd.fit(genotypes[:5], [1.0, 2.0, 3.0, 4.0, 5.0])
    spd.predict(genotypes)
    assert trained == [6, 6]  # two dishes, each motif once; the refit trained nothing
    # another surrogate with the same dish reads the records the first one kept
    again = petri_dish(space, seed=0, dishes=2, feature_cache=tmp_path, **SMALL)
    np.testing.assert_array_equal(again.predict(genotypes), first)
    assert trained == [6, 6]
    # so does a search's pool of the same space, in any process (no address in the identity)
    pool = PoolSpace(space, genotypes, neighbours=2, cache=False)
    assert pool.identity() == space.identity() and "0x" not in repr(pool.identity())
    pooled = petri_dish(pool, seed=0, dishes=2, feature_cache=tmp_path, **SMALL)
    np.testing.assert_array_equal(pooled.predict(genotypes), first)
    assert trained == [6, 6]
    # meta-learned data are another dish: its records are computed afresh
    learned = petri_dish(space, seed=0, dishes=1, meta_steps=1, meta_batch=6, **SMALL)
    learned.fit(genotypes, np.arange(1.0, 7.0))
    assert trained[2:] == [6, 6]  # the orientation on the random data, then the learned data


def test_a_read_out_never_reverses_the_dish_on_a_few_contrary_cells():
    rng = np.random.default_rng(0)
    features, scores = rng.normal(size=(10, 6)), rng.normal(size=10)
    contrary = -scores + 0.1 * rng.normal(size=10)  # the training cells rank against the dish
    readout = ResidualGP().fit(features, scores, contrary)
    test_features, test_scores = rng.normal(size=(20, 6)), rng.normal(size=20)
    mean, std = readout.predict(test_features, test_scores)
    np.testing.assert_array_equal(mean, test_scores)
    assert not readout.fitted_ and np.isnan(std).all()
    # agreeing cells are learned from: the prediction is no longer the bare score
    agreeing = ResidualGP().fit(features, scores, scores + 0.1 * rng.normal(size=10))
    assert agreeing.fitted_ and agreeing.slope_ > 0
    assert kendalltau(agreeing.predict(test_features, test_scores)[0], test_scores)[0] > 0.8
