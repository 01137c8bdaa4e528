"""The NAO encoder-predictor(-decoder) surrogate: fitting, determinism, state, generator."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import scipy.stats
import torch
from chain_space import ChainSpace
from surrogate_helpers import synthetic, unique_sample

from search_spaces import get_space
from surrogates import SURROGATES
from surrogates.nao import NAOSurrogate
from surrogates.nao_model import SOS

# Small networks and few epochs keep the file fast on shared CPUs; NAO's sizes are the defaults.
SMALL = dict(embedding=32, hidden=32, mlp_hidden=64)
FIT = dict(SMALL, epochs=30, lr=1e-2, holdout=0.0, target="minmax")


@pytest.fixture(scope="module")
def darts():
    return get_space("darts_rnn")


@pytest.fixture(scope="module")
def fitted(darts):
    cells = unique_sample(darts, 40, seed=0)
    y = [synthetic(darts, g) for g in cells]
    return NAOSurrogate(darts, seed=0, **FIT).fit(cells, y), cells, y


def test_fits_a_known_function_of_the_tokens(fitted):
    model, cells, y = fitted
    tau = scipy.stats.kendalltau(model.predict(cells), y).statistic
    assert tau > 0.9, tau


def test_predictions_are_deterministic_given_the_seed(darts):
    cells = unique_sample(darts, 20, seed=1)
    y = [synthetic(darts, g) for g in cells]
    opts = dict(SMALL, epochs=3, holdout=0.0)
    a = NAOSurrogate(darts, seed=3, **opts).fit(cells, y).predict(cells)
    b = NAOSurrogate(darts, seed=3, **opts).fit(cells, y).predict(cells)
    c = NAOSurrogate(darts, seed=4, **opts).fit(cells, y).predict(cells)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_state_dict_round_trips_exactly(fitted, darts):
    model, cells, _ = fitted
    state = pickle.loads(pickle.dumps(model.state_dict()))
    fresh = NAOSurrogate(darts, seed=0, **FIT)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.predict(cells), model.predict(cells))
    assert fresh.generate(cells[:3], 2, np.random.default_rng(2)) == model.generate(
        cells[:3], 2, np.random.default_rng(2)
    )
    with pytest.raises(ValueError, match="other options"):
        NAOSurrogate(darts, **dict(FIT, hidden=16)).load_state_dict(state)


def test_generator_returns_new_valid_cells_predicted_better(fitted, darts):
    model, cells, y = fitted
    seeds = [cells[i] for i in np.argsort(y)[-10:]]  # the worst ten: room to improve
    new, stats = model.generate(seeds, 10, np.random.default_rng(0))
    assert 0 < len(new) <= 10
    keys = {darts.key(g) for g in new}
    assert len(keys) == len(new)
    assert not keys & {darts.key(g) for g in cells}
    for g in new:
        assert darts.validate(darts.to_json(g)) == g
    assert stats["decoded"] == stats["valid"] + stats["repaired"] + stats["dropped"]
    assert model.predict(new).mean() < model.predict(seeds).mean()


def test_generator_repairs_invalid_decodes(darts):
    # After one epoch the decoder has not learned the length or the wiring rules yet.
    cells = unique_sample(darts, 30, seed=2)
    model = NAOSurrogate(darts, seed=0, epochs=1, holdout=0.0, **SMALL)
    model.fit(cells, [synthetic(darts, g) for g in cells])
    new, stats = model.generate(cells[:4], 3, np.random.default_rng(0))
    assert stats["repaired"] > 0
    assert stats["decoded"] == stats["valid"] + stats["repaired"] + stats["dropped"]
    for g in new:
        assert darts.validate(darts.to_json(g)) == g


def test_constrained_decoding_follows_the_learned_grammar(fitted, darts):
    model, cells, _ = fitted
    net = model.model_
    torch.manual_seed(0)
    enc_out = torch.nn.functional.normalize(torch.randn(6, 16, 32), dim=-1)  # off the data
    mask = torch.ones(6, 16, dtype=torch.bool)
    arch = net.embed(enc_out, mask)
    position, follows = torch.as_tensor(model.position_), torch.as_tensor(model.follows_)
    free = net.greedy_decode(enc_out, mask, arch, model.max_len_)
    assert any(len(ids) != 2 * darts.nodes for ids in free)  # unconstrained: wrong lengths
    for ids in net.greedy_decode(enc_out, mask, arch, model.max_len_, position, follows):
        pairs = zip([SOS, *ids], ids, strict=False)
        assert all(model.follows_[a, b] for a, b in pairs)
        # every darts_rnn training sequence has 16 tokens and node i reads in0..in<i-1>
        darts.from_tokens([model.itos[i] for i in ids])


def test_augmentation_trains_on_equivalent_encodings(fitted, darts):
    model, cells, _ = fitted
    n_seqs = sum(len({tuple(s) for s in darts.equivalent_tokens(g)}) for g in cells)
    assert model.history_["items"] == n_seqs > len(cells)
    pairs = [(g, darts.from_tokens(darts.equivalent_tokens(g)[-1])) for g in cells]
    pairs = [(g, h) for g, h in pairs if h != g]
    assert all(darts.key(g) == darts.key(h) for g, h in pairs)
    assert pairs
    plain = NAOSurrogate(darts, augment=False)
    assert all(len(plain._sequences(g)) == 1 for g, _ in pairs)
    assert all(len(model._sequences(g)) == 2 for g, _ in pairs)


def test_variable_length_sequences_and_early_stopping():
    space = ChainSpace()
    cells = unique_sample(space, 40, seed=0)
    y = [len(g) + 2.0 * g.count("relu") for g in cells]
    model = NAOSurrogate(space, seed=0, epochs=300, patience=5, lr=1e-2, stop_on="mse", **SMALL)
    model.fit(cells, y)
    assert model.history_["epochs"] < 300  # stopped early on the held-out cells
    assert model.history_["best_epoch"] <= model.history_["epochs"]
    pred = model.predict(cells)
    assert np.isfinite(pred).all() and len(set(pred.tolist())) > 1
    new, _ = model.generate(cells[:5], 5, np.random.default_rng(0))
    for g in new:
        assert space.validate(list(g)) == g


def test_diverged_cells_are_clipped_to_the_worst_finite_value(darts):
    model = NAOSurrogate(darts, target="log", epochs=3, stop_on="loss", **SMALL)
    y = model._normalise([100.0, math.inf, 200.0, 400.0])
    np.testing.assert_allclose(y, [0.0, 1.0, 0.5, 1.0])
    cells = unique_sample(darts, 10, seed=3)
    objectives = [math.inf if i % 3 == 0 else 100.0 + i for i in range(10)]
    assert np.isfinite(model.fit(cells, objectives).predict(cells)).all()
    assert np.isfinite(model.history_["val_loss"])  # two of the ten cells were held out


def test_options_are_checked(darts):
    with pytest.raises(ValueError, match="dropout"):
        NAOSurrogate(darts, dropout=1.5)
    with pytest.raises(ValueError, match="target"):
        NAOSurrogate(darts, target="zscore")
    with pytest.raises(ValueError, match="torch device"):
        NAOSurrogate(darts, device="abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            NAOSurrogate(darts, device="cuda")
    with pytest.raises(ValueError, match="positive"):
        NAOSurrogate(darts, target="log").fit(unique_sample(darts, 2, 0), [-1.0, 2.0])
    with pytest.raises(RuntimeError, match="not fitted"):
        NAOSurrogate(darts).predict(unique_sample(darts, 1, 0))
    cells = unique_sample(darts, 4, seed=0)
    no_decoder = NAOSurrogate(darts, decoder=False, epochs=1, **SMALL).fit(
        cells, [1.0, 2.0, 3.0, 4.0]
    )
    with pytest.raises(ValueError, match="decoder"):
        no_decoder.generate(cells, 2, np.random.default_rng(0))


def test_registered_as_nao(darts):
    model = SURROGATES.create("nao", space=darts, seed=0, epochs=2)
    assert isinstance(model, NAOSurrogate)
