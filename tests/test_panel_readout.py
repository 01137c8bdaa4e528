"""The default read-out: a zero-shot prior from the dish and the space's descriptors,
corrected by a ridge anchored to it; every value independent of the cells predicted with it."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau
from surrogate_helpers import BAD, ExplodingSpace, known_objective, motifs, petri_dish
from test_dish_readout import SMALL as GP_SMALL

from evo_nas_common import statefile
from search_spaces import get_space
from surrogates.readout import MIN_RIDGE_CELLS, AnchoredRidge, ReferenceScale
from surrogates.spd import REFERENCE_CELLS

#: the small dish of the GP read-out's tests, with the default read-out
SMALL = {k: v for k, v in GP_SMALL.items() if k != "readout"}


def test_reference_ranks_are_the_same_whatever_the_company():
    rng = np.random.default_rng(0)
    scale = ReferenceScale(rng.normal(size=(200, 3)))
    x = rng.normal(size=(50, 3)) * 2
    x[0, 0], x[1, 1] = np.inf, np.nan
    whole = scale.transform(x)
    alone = np.concatenate([scale.transform(x[i : i + 1]) for i in range(50)])
    np.testing.assert_array_equal(whole, alone)
    assert whole[0, 0] == whole[1, 1] == np.sqrt(3.0)  # non-finite: the worst rank
    finite = np.isfinite(x[:, 2])
    # monotone, bounded, and strict beyond the reference's range too
    order = np.argsort(x[finite, 2])
    assert (np.diff(whole[finite, 2][order]) > 0).all()
    assert np.abs(whole).max() <= np.sqrt(3.0)


def test_the_anchored_ridge_recovers_a_ranking_its_prior_misses():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 20))
    prior = rng.normal(size=300)  # knows nothing
    objective = np.exp(x[:, 3] - 0.5 * x[:, 7])
    ridge = AnchoredRidge(alpha=1.0).fit(x[:200], prior[:200], objective[:200])
    assert ridge.slope_ < 0.2  # the prior earns (almost) no weight
    assert kendalltau(ridge.predict(x[200:], prior[200:]), objective[200:])[0] > 0.8
    # too few cells: the prior, unchanged
    few = AnchoredRidge().fit(x[: MIN_RIDGE_CELLS - 1], prior[:19], objective[:19])
    np.testing.assert_array_equal(few.predict(x[200:], prior[200:]), prior[200:])


def test_with_no_ground_truth_the_surrogate_ranks_by_the_panels_prior():
    space = get_space("nasbench_nlp")
    genotypes = motifs(space, 40, seed=3)
    spd = petri_dish(space, seed=1, dishes=2, **SMALL)
    features, prior = spd.panel(genotypes)
    np.testing.assert_array_equal(spd.predict(genotypes), prior)
    # a cell whose output cannot read the current input ranks after every cell that can
    blind = np.array([space.descriptors(g)["input_delay"] > 0 for g in genotypes])
    assert blind.any() and not blind.all()
    assert prior[blind].min() > prior[~blind].max()
    # the same value alone as in a batch
    alone = np.concatenate([spd.predict([g]) for g in genotypes[:5]])
    np.testing.assert_array_equal(alone, prior[:5])
    assert features.shape == (40, len(spd.feature_names()) + len(space.descriptors(genotypes[0])))


def test_a_refit_moves_the_ranking_where_the_results_say_so_and_survives_a_round_trip():
    space = get_space("nasbench_nlp")
    genotypes = motifs(space, 60, seed=4)
    spd = petri_dish(space, seed=2, dishes=1, **SMALL)
    before = spd.predict(genotypes)
    # ground truth the prior gets backwards: the refit must turn the order round
    objective = np.exp(-before / 3.0)
    spd.fit(genotypes[:40], objective[:40])
    after = spd.predict(genotypes[40:])
    assert kendalltau(before[40:], objective[40:])[0] < 0
    assert kendalltau(after, objective[40:])[0] > kendalltau(before[40:], objective[40:])[0]
    state = statefile.loads(statefile.dumps(spd.state_dict()))
    fresh = petri_dish(space, seed=2, dishes=1, **SMALL)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.predict(genotypes[40:]), after)


def test_a_motif_diverging_in_the_dish_ranks_last_and_never_raises():
    space = ExplodingSpace(nodes=3)
    genotypes = motifs(space, 30)
    genotypes[3] = BAD
    y = known_objective(genotypes)
    y[5] = np.inf  # a diverged ground truth too
    spd = petri_dish(space, seed=0, dishes=2, **SMALL)
    diverged = ~np.isfinite(spd.dish_scores(genotypes)).all(axis=0)
    assert diverged[3] and diverged.sum() < 5
    np.testing.assert_array_equal(np.isinf(spd.predict(genotypes)), diverged)
    spd.fit(genotypes, y)  # the diverged motifs and the diverged cell take part
    pred = spd.predict(genotypes)
    np.testing.assert_array_equal(np.isinf(pred), diverged)


def test_recording_cells_reports_its_progress():
    space = get_space("nasbench_nlp")
    spd = petri_dish(space, seed=0, dishes=1, predict_batch=4, **SMALL)
    seen = []
    spd.progress = seen.append
    spd.predict(motifs(space, 10, seed=5))
    screens = [(e["done"], e["total"]) for e in seen if e["event"] == "screen"]
    # the ten cells from the start in chunks of four, then the reference cells the panel is
    # scaled by
    assert screens[:4] == [(0, 10), (4, 10), (8, 10), (10, 10)]
    assert screens[-1] == (REFERENCE_CELLS, REFERENCE_CELLS)
