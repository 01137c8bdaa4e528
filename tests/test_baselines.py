"""The cheap baselines: parameter count (`params`) and a tree ensemble on tokens (`forest`)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import scipy.stats
from chain_space import ChainSpace
from surrogate_helpers import synthetic, unique_sample

from search_spaces import get_space
from surrogates import SURROGATES
from surrogates.baselines import ForestSurrogate, ParamsSurrogate


@pytest.fixture(scope="module")
def darts():
    return get_space("darts_rnn")


# -- params -------------------------------------------------------------------------------------
def test_params_counts_the_cell_and_learns_the_sign():
    space = ChainSpace()
    cells = unique_sample(space, 30, seed=0)
    model = ParamsSurrogate(space, ref_size=8)
    counts = np.array([model.count(g) for g in cells])
    # w_in is (8 + 8) x 8 + 8, every lin op adds 8 x 8 + 8
    np.testing.assert_array_equal(counts, [136 + 72 * g.count("lin") for g in cells])
    assert len(model._counts) == len(cells)  # cached per key

    worse_when_bigger = counts + 0.1 * np.arange(len(cells))
    model.fit(cells, worse_when_bigger)
    assert model.sign_ == 1.0
    np.testing.assert_array_equal(model.predict(cells), counts)
    model.fit(cells, -worse_when_bigger)
    assert model.sign_ == -1.0
    np.testing.assert_array_equal(model.predict(cells), -counts)


def test_params_round_trips_and_handles_diverged_cells():
    space = ChainSpace()
    cells = unique_sample(space, 12, seed=1)
    objectives = [math.inf if g.count("lin") >= 2 else 100.0 + g.count("lin") for g in cells]
    model = ParamsSurrogate(space, seed=0, ref_size=8).fit(cells, objectives)
    assert model.sign_ == 1.0  # the diverged (worst) cells are the biggest
    fresh = ParamsSurrogate(space, ref_size=8)
    fresh.load_state_dict(pickle.loads(pickle.dumps(model.state_dict())))
    np.testing.assert_array_equal(fresh.predict(cells), model.predict(cells))
    with pytest.raises(ValueError, match="ref_size"):
        ParamsSurrogate(space, ref_size=4).load_state_dict(model.state_dict())


def test_params_is_flat_on_darts_rnn(darts):
    # Every darts_rnn cell of one size has the same matrices: the baseline cannot rank them.
    cells = unique_sample(darts, 5, seed=0)
    pred = ParamsSurrogate(darts, ref_size=4).fit(cells, [1.0, 2.0, 3.0, 4.0, 5.0]).predict(cells)
    assert len(set(pred.tolist())) == 1


# -- forest -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["random_forest", "gradient_boosting"])
def test_forest_learns_a_known_function_of_the_tokens(darts, kind):
    cells = unique_sample(darts, 300, seed=0)
    y = np.array([synthetic(darts, g) for g in cells])
    model = ForestSurrogate(darts, seed=0, model=kind, n_estimators=100).fit(cells[:200], y[:200])
    assert scipy.stats.kendalltau(model.predict(cells[:200]), y[:200]).statistic > 0.9
    assert scipy.stats.kendalltau(model.predict(cells[200:]), y[200:]).statistic > 0.6


def test_forest_features_are_position_one_hot_plus_counts():
    space = ChainSpace()
    model = ForestSurrogate(space).fit([("lin", "relu"), ("tanh",)], [1.0, 2.0])
    assert model.max_len_ == 2
    x = model.features([("relu", "relu", "lin")])  # longer than seen: one-hot cut, counts kept
    np.testing.assert_array_equal(x, [[0, 0, 1, 0, 0, 1, 1, 0, 2]])


def test_forest_is_deterministic_round_trips_and_handles_diverged_cells(darts):
    cells = unique_sample(darts, 40, seed=2)
    y = [math.inf if i % 5 == 0 else synthetic(darts, g) for i, g in enumerate(cells)]
    a = ForestSurrogate(darts, seed=1, n_estimators=20).fit(cells, y)
    b = ForestSurrogate(darts, seed=1, n_estimators=20).fit(cells, y)
    c = ForestSurrogate(darts, seed=2, n_estimators=20).fit(cells, y)
    assert np.isfinite(a.predict(cells)).all()
    np.testing.assert_array_equal(a.predict(cells), b.predict(cells))
    assert not np.array_equal(a.predict(cells), c.predict(cells))
    fresh = ForestSurrogate(darts, n_estimators=20)
    fresh.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    np.testing.assert_array_equal(fresh.predict(cells), a.predict(cells))


def test_options_are_checked_and_registered(darts):
    with pytest.raises(ValueError, match="ref_size"):
        ParamsSurrogate(darts, ref_size=0)
    with pytest.raises(ValueError, match="model"):
        ForestSurrogate(darts, model="svm")
    with pytest.raises(RuntimeError, match="not fitted"):
        ForestSurrogate(darts).predict(unique_sample(darts, 1, 0))
    assert isinstance(SURROGATES.create("params", space=darts, seed=0), ParamsSurrogate)
    assert isinstance(SURROGATES.create("forest", space=darts, seed=0), ForestSurrogate)
