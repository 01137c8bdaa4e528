"""The slope experiment: the sigmoid_slope space, the MLP classifier ground truth, the MNIST
loader, the MLP Petri dish and the example run with its sweep plot."""

from __future__ import annotations

import gzip
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from scipy.stats import rankdata, spearmanr
from surrogate_helpers import petri_dish

from evo_nas.cli.train import data as data_group
from evo_nas_common.data_files import DataError, md5sum
from ground_truths.digits_data import (
    MNIST_FILES,
    fetch_mnist,
    load_digits_splits,
    load_mnist_splits,
)
from ground_truths.mlp_classifier import MLPClassifierGroundTruth
from search_spaces import GenotypeError, get_space
from search_spaces.sigmoid_slope import SigmoidSlopeSpace
from surrogates.mlp_dish import MLPDish, MLPDishOptions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def space() -> SigmoidSlopeSpace:
    return SigmoidSlopeSpace()


# -- the space ---------------------------------------------------------------------------------
def test_slopes_round_trip_and_keys_are_canonical(space):
    rng = np.random.default_rng(0)
    for _ in range(200):
        g = space.sample(rng)
        assert 0.01 <= g <= 2.01
        assert space.from_json(space.to_json(g)) == g
        assert space.key(space.validate(str(g))) == space.key(g)
        assert space.tokens(space.from_tokens(space.tokens(g))) == space.tokens(g)
    assert space.key(space.validate(0.123449)) == space.key(space.validate(0.12341)) == "0.1234"
    assert get_space("sigmoid_slope", low=0.5, high=1.0).validate("0.75") == 0.75


@pytest.mark.parametrize(
    "bad, message",
    [(2.5, "outside"), (-1, "outside"), ("fast", "a number"), (True, "a number"), ([1], "number")],
)
def test_bad_slopes_are_refused_in_one_line(space, bad, message):
    with pytest.raises(GenotypeError, match=message) as err:
        space.validate(bad)
    assert "\n" not in str(err.value)


def test_mutation_stays_in_range_and_always_moves(space):
    rng = np.random.default_rng(1)
    for g in [0.01, 2.01, 1.0, *(space.sample(rng) for _ in range(100))]:
        for _ in range(20):
            child = space.mutate(g, rng)
            assert child != g and 0.01 <= child <= 2.01
            assert space.validate(child) == child


def test_grid_spans_the_range_in_order(space):
    grid = space.grid(100)
    assert len(grid) == 100 and grid[0] == 0.01 and grid[-1] == 2.01
    assert all(a < b for a, b in zip(grid, grid[1:]))


def test_activation_and_cell_compute_the_motif(space):
    z = torch.randn(3, 5, 4)
    batched = space.build_activation_batch([0.5, 1.0, 2.0])(z)
    for m, c in enumerate([0.5, 1.0, 2.0]):
        assert torch.allclose(batched[m], torch.sigmoid(c * z[m]))
        assert torch.allclose(space.build_activation(c)(z[m]), batched[m])
    cell = space.build_cell(0.7, input_size=6, hidden_size=4)
    out, (h,) = cell(torch.randn(5, 2, 6), cell.init_state(2))
    assert out.shape == (5, 2, 4) and torch.equal(out[-1], h)
    assert ((out > 0) & (out < 1)).all()


# -- the ground truth --------------------------------------------------------------------------
def test_digit_classifier_is_far_above_chance(space):
    gt = MLPClassifierGroundTruth(space, epochs=4, seeds=1, lr=0.01)
    (result,) = gt.evaluate([1.0])
    assert result.status == "ok"
    assert result.objective < 0.25  # chance is 0.9 on ten balanced classes
    assert result.metrics["test_errors"] == [result.objective]


def test_batching_does_not_change_a_slopes_result(space):
    gt = MLPClassifierGroundTruth(space, epochs=2, seeds=2, hidden=16)
    together = gt.evaluate([0.3, 1.2, 1.9])
    alone = gt.evaluate([1.2])
    assert together[1].metrics["test_errors"] == pytest.approx(alone[0].metrics["test_errors"])
    assert together[0].objective != together[2].objective  # the slope matters


class _ExplodingSlopes(SigmoidSlopeSpace):
    """Slopes above 1.5 blow activations up to inf: a motif that diverges."""

    def build_activation_batch(self, genotypes):
        class Act(torch.nn.Module):
            def __init__(self):
                super().__init__()  # a buffer, so the slopes follow the module to any device
                self.register_buffer("slopes", torch.tensor([float(g) for g in genotypes]))

            def forward(self, z):
                c = self.slopes.view(-1, *([1] * (z.dim() - 1)))
                return torch.sigmoid(c * z) + (c > 1.5) * 1e30 * z * z

        return Act()


def test_a_diverging_motif_is_recorded_not_raised():
    gt = MLPClassifierGroundTruth(_ExplodingSlopes(), epochs=2, seeds=2, hidden=8)
    ok, bad = gt.evaluate([1.0, 1.8])
    assert ok.status == "ok" and math.isfinite(ok.objective)
    assert bad.status == "diverged" and bad.objective == math.inf
    assert bad.message.startswith("seed 0: training loss") and "at epoch 1" in bad.message


# -- MNIST files -------------------------------------------------------------------------------
def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _stand_in_mnist(folder: Path) -> dict[str, tuple[int, str]]:
    """Four small IDX files under MNIST's names (50 training, 20 test images); their sums."""
    rng = np.random.default_rng(0)
    names = list(MNIST_FILES)
    folder.mkdir(parents=True, exist_ok=True)
    _idx(folder / names[0], rng.integers(0, 256, (50, 28, 28)))
    _idx(folder / names[1], rng.integers(0, 10, 50))
    _idx(folder / names[2], rng.integers(0, 256, (20, 28, 28)))
    _idx(folder / names[3], rng.integers(0, 10, 20))
    return {n: ((folder / n).stat().st_size, md5sum(folder / n)) for n in names}


def test_mnist_loader_reads_verified_idx_files_and_refuses_altered_ones(tmp_path):
    names = list(MNIST_FILES)
    sums = _stand_in_mnist(tmp_path)
    splits = load_mnist_splits(tmp_path, checksums=sums)
    assert splits.x_train.shape == (40, 784) and splits.x_val.shape == (10, 784)
    assert splits.x_test.shape == (20, 784) and splits.y_test.shape == (20,)
    assert 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0
    # the published checksums: these stand-in files are not MNIST
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated"):
        load_mnist_splits(tmp_path)
    (tmp_path / names[3]).write_bytes(b"\x00" * sums[names[3]][0])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: altered \(md5 "):
        load_mnist_splits(tmp_path, checksums=sums)
    (tmp_path / names[1]).unlink()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: missing"):
        load_mnist_splits(tmp_path, checksums=sums)


def test_mnist_fetch_installs_verified_files_only(tmp_path):
    sums = _stand_in_mnist(tmp_path / "source")
    dest = fetch_mnist(str(tmp_path / "source"), tmp_path / "data" / "mnist", checksums=sums)
    assert load_mnist_splits(dest, checksums=sums).x_test.shape == (20, 784)
    # the command checks the published sums: the stand-ins are refused, nothing is installed
    target = tmp_path / "other"
    args = ["fetch", "mnist", "--source", str(tmp_path / "source"), "--dest", str(target)]
    out = CliRunner().invoke(data_group, args)
    source_file = tmp_path / "source" / "train-images-idx3-ubyte.gz"  # not the staging copy
    assert out.exit_code == 2 and out.output.startswith(f"error: {source_file}: truncated")
    assert not target.exists() or not any(target.iterdir())


@pytest.mark.parametrize(
    "bad", [{"val_fraction": 0.0}, {"val_fraction": 0.5, "test_fraction": 0.5}, {"seeds": 0}]
)
def test_classifier_options_are_refused_when_built(space, bad):
    with pytest.raises(ValueError, match="fraction|seeds"):
        MLPClassifierGroundTruth(space, **bad)
    if "seeds" not in bad:
        with pytest.raises(ValueError, match="fraction"):
            load_digits_splits(**bad)


# -- the MLP dish ------------------------------------------------------------------------------
def test_activation_spaces_get_the_mlp_dish_with_the_papers_defaults(space):
    spd = petri_dish(space)
    assert isinstance(spd.dishes_[0], MLPDish)
    o = spd.options
    assert (o["dish"], o["dims"], o["hidden_size"], o["layers"], o["classes"]) == (
        "mlp", 10, 1, 2, 10
    )  # fmt: skip
    assert (o["samples"], o["val_samples"], o["inner_steps"], o["inner_lr"], o["loss"]) == (
        10, 10, 250, 0.01, "mse"
    )  # fmt: skip
    assert (o["dishes"], o["keep_fraction"]) == (8, 0.5)
    assert petri_dish(space, inner_steps=30).options["inner_steps"] == 30
    assert petri_dish(get_space("darts_rnn")).options["dish"] == "rnn"


def test_mlp_dish_scores_motifs_independently(space):
    spd = petri_dish(space, seed=3, inner_steps=20, precision="float64")
    slopes = [0.2, 0.9, 1.7, 0.05]
    together = spd.dish_scores(slopes)
    assert together.shape == (8, 4)  # the preset's eight dishes
    alone = np.stack([spd.dish_scores([c])[:, 0] for c in slopes], axis=1)
    assert np.allclose(together, alone, rtol=0, atol=1e-12)
    assert len(set(np.round(together[0], 9))) == 4


def test_mlp_dish_fit_ranks_its_training_slopes(space):
    slopes = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    error = [0.08, 0.05, 0.04, 0.045, 0.05, 0.06, 0.065, 0.07]  # an optimum inside the range
    unlearned = petri_dish(space, seed=0, inner_steps=60, meta_steps=0)
    before = spearmanr(unlearned.predict(slopes), error)[0]
    spd = petri_dish(space, seed=0, inner_steps=60, meta_steps=40).fit(slopes, error)
    after = spearmanr(spd.predict(slopes), error)[0]
    assert after > 0.9 and after > before + 0.3
    assert spd.history_[0][-1] < spd.history_[0][0]


def test_prediction_keeps_the_dishes_that_fit_their_training_slopes_best(space):
    slopes = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6]
    error = [0.08, 0.05, 0.04, 0.045, 0.05, 0.06, 0.065, 0.07]
    opts = dict(inner_steps=30, meta_steps=5, dishes=4, keep_fraction=0.5, precision="float64")
    spd = petri_dish(space, seed=1, **opts)
    assert spd.kept_ == [0, 1, 2, 3]  # unfitted: every dish
    spd.fit(slopes, error)
    targets = spd._targets(error)
    fit_loss = [float(spd.outer_loss(torch.as_tensor(r), targets)) for r in spd.dish_scores(slopes)]
    assert spd.kept_ == sorted(np.argsort(fit_loss)[:2].tolist())
    test = [0.05, 0.3, 1.1, 1.9]
    rows = spd.dish_scores(test)[spd.kept_]
    np.testing.assert_allclose(spd.predict(test), np.mean([rankdata(r) for r in rows], axis=0))
    fresh = petri_dish(space, seed=1, **opts)
    fresh.load_state_dict(spd.state_dict())
    assert fresh.kept_ == spd.kept_
    with pytest.raises(ValueError, match="dish.keep_fraction: Input should be greater than 0"):
        petri_dish(space, keep_fraction=0)


def test_a_dish_in_which_one_training_motif_diverged_can_still_be_kept(space, monkeypatch):
    slopes, error = [0.2, 0.4, 0.6, 0.8], [4.0, 3.0, 2.0, 1.0]
    opts = dict(inner_steps=5, meta_steps=0, dishes=4, keep_fraction=0.5)
    spd = petri_dish(space, seed=1, **opts)
    rows = np.array(
        [
            [4.0, 3.0, 2.0, np.inf],  # orders the three finite motifs right; one diverged
            [1.0, 2.0, 3.0, 4.0],  # every pair the wrong way round
            [3.0, 4.0, 2.0, 1.0],  # one pair wrong
            [np.inf] * 4,  # every motif diverged: no fit to judge
        ]
    )
    monkeypatch.setattr(spd, "dish_scores", lambda genotypes: rows)
    spd.fit(slopes, error)
    assert spd.kept_ == [0, 2]


# -- the example, end to end -------------------------------------------------------------------
def test_example_runs_and_sweeps_predicted_and_true_curves(tmp_path):
    cfg = yaml.safe_load((REPO / "examples" / "sigmoid_slope.yaml").read_text())
    cfg["output_dir"] = str(tmp_path)
    cfg["ground_truth"]["options"].update(epochs=2, seeds=1, hidden=16)
    cfg["surrogate"]["options"] = {"dish": {"kind": "mlp", "inner_steps": 20, "meta_steps": 3}}
    cfg["budget"]["evaluations"] = 8
    cfg["logging"] = {"progress": False}
    path = tmp_path / "slope.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = [sys.executable, "-m", "evo_nas.cli"]
    subprocess.run([*cli, "run", str(path)], check=True, cwd=REPO)
    run_dir = tmp_path / cfg["name"]
    out = subprocess.run(
        [*cli, "sweep", str(run_dir), "--points", "12", "--truth"],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert "sweep.png" in out.stdout and (run_dir / "plots" / "sweep.png").stat().st_size > 0
    rows = (run_dir / "sweep.csv").read_text().splitlines()
    assert rows[0] == "x,genotype,predicted,objective" and len(rows) == 13
    values = [[float(v) for v in r.split(",")] for r in rows[1:]]
    assert values[0][0] == 0.01 and values[-1][0] == 2.01
    assert all(math.isfinite(v[2]) and 0 < v[3] < 1 for v in values)
    bad = subprocess.run([*cli, "sweep", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_mlp_dishes_batched_together_match_each_dish_alone(space):
    slopes = [0.2, 0.9, 1.7]
    options = MLPDishOptions(inner_steps=20, inner_lr=0.01)
    joint = MLPDish(space, [5, 9], options, torch.float64).scores(slopes)
    assert joint.shape == (2, 3)
    for k, seed in enumerate([5, 9]):
        alone = MLPDish(space, [seed], options, torch.float64).scores(slopes)
        assert torch.allclose(joint[k], alone[0], rtol=0, atol=1e-12)
    assert not torch.allclose(joint[0], joint[1])


class _Terminal(io.StringIO):
    """Standard error as a terminal, where the run's progress is a bar redrawn in place."""

    def isatty(self) -> bool:
        return True


def test_the_run_bar_shows_ground_truth_epochs_and_surrogate_fit_steps(tmp_path, monkeypatch):
    from evo_nas.search.launch import run_search

    cfg = yaml.safe_load((REPO / "examples" / "sigmoid_slope.yaml").read_text())
    cfg["output_dir"] = str(tmp_path)
    cfg["ground_truth"]["options"].update(epochs=2, seeds=1, hidden=8)
    cfg["surrogate"]["options"] = {
        "dish": {"kind": "mlp", "inner_steps": 5, "meta_steps": 6, "dishes": 1}
    }
    cfg["budget"]["evaluations"] = 7
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run_search(cfg, progress=True)
    err = terminal.getvalue()
    assert "training: epoch 2/2" in err
    assert "fitting surrogate: dish 1/1 step 5/6" in err
