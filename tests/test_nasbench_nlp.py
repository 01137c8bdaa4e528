"""The nasbench_nlp space (parsing, errors, keys, operators, tokens, cells) and its ground truth."""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from evo_nas_common import statefile
from ground_truths import GROUND_TRUTHS
from ground_truths.nasbench_nlp_logs import NasBenchNLPGroundTruth, read_runs
from search_spaces import GenotypeError, get_space
from search_spaces.nasbench_nlp_graph import relabel, sane, state_size

GRU = {
    "r": {"op": "linear", "input": ["x", "h_prev_0"]},
    "r_act": {"op": "activation_sigm", "input": ["r"]},
    "z": {"op": "linear", "input": ["x", "h_prev_0"]},
    "z_act": {"op": "activation_sigm", "input": ["z"]},
    "rh": {"op": "elementwise_prod", "input": ["r_act", "h_prev_0"]},
    "h_tilde": {"op": "linear", "input": ["x", "rh"]},
    "h_tilde_act": {"op": "activation_tanh", "input": ["h_tilde"]},
    "h_new_0": {"op": "blend", "input": ["z_act", "h_prev_0", "h_tilde_act"]},
}


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench_nlp")


@pytest.fixture(scope="module")
def zip_path(data_root: Path) -> Path:
    return data_root / "nasbench-nlp" / "ptb_single_run_dev.zip"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A private cache dir: the first load parses every log, later ones read the cache file."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def gt(space, zip_path, cache_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache_dir))
        yield GROUND_TRUTHS.create("nasbench_nlp", space=space, path=zip_path)


def _rename(recepie: dict, rng: np.random.Generator) -> dict:
    """The same cell with intermediate nodes renamed at random and the entries shuffled."""
    inner = [n for n in recepie if not n.startswith("h_new_")]
    new = {n: f"v{int(i)}" for n, i in zip(inner, rng.permutation(100)[: len(inner)])}
    items = list(recepie.items())
    rng.shuffle(items)
    return {
        new.get(n, n): {"op": s["op"], "input": [new.get(i, i) for i in s["input"]]}
        for n, s in items
    }


# -- parsing and errors ------------------------------------------------------------------------


def test_validate_accepts_dict_json_string_and_names(space):
    g = space.validate(GRU)
    assert space.validate(json.dumps(GRU)) == g
    assert space.validate("gru") == g
    assert space.to_json(g) == GRU
    assert set(space.named()) == {"rnn", "lstm", "gru"}
    assert state_size(space.validate("lstm")) == 2


@pytest.mark.parametrize(
    "recepie, message",
    [
        (  # cycle
            {
                "a": {"op": "linear", "input": ["x", "b"]},
                "b": {"op": "activation_tanh", "input": ["a"]},
                "h_new_0": {"op": "elementwise_sum", "input": ["b", "h_prev_0"]},
            },
            "node 'a': cycle a -> b -> a",
        ),
        (  # dangling input
            {"h_new_0": {"op": "linear", "input": ["x", "ghost"]}},
            "node 'h_new_0': input 'ghost' is not defined",
        ),
        (  # h_prev beyond the state size
            {"h_new_0": {"op": "linear", "input": ["x", "h_prev_1"]}},
            "node 'h_new_0': input 'h_prev_1' has no matching output",
        ),
        (  # unknown op
            {
                "a": {"op": "conv", "input": ["x"]},
                "h_new_0": {"op": "activation_tanh", "input": ["a"]},
            },
            "node 'a': unknown op 'conv'",
        ),
        (  # wrong arity
            {
                "g": {"op": "blend", "input": ["x", "h_prev_0"]},
                "h_new_0": {"op": "activation_tanh", "input": ["g"]},
            },
            "node 'g': op 'blend' takes 3 inputs, got 2",
        ),
        (  # x read by an op that needs hidden-size inputs
            {"h_new_0": {"op": "elementwise_prod", "input": ["x", "h_prev_0"]}},
            "node 'h_new_0': op 'elementwise_prod' cannot read x",
        ),
        (  # missing h_new_0
            {"h_new_1": {"op": "linear", "input": ["x", "h_prev_0"]}},
            "missing output node 'h_new_0'",
        ),
        (  # gap in the outputs
            {
                "h_new_0": {"op": "linear", "input": ["x", "h_prev_0"]},
                "h_new_2": {"op": "linear", "input": ["x", "h_prev_0"]},
            },
            "node 'h_new_2': outputs must be numbered without gaps",
        ),
        (  # a node nothing reads
            {
                "dead": {"op": "activation_tanh", "input": ["h_prev_0"]},
                "h_new_0": {"op": "linear", "input": ["x", "h_prev_0"]},
            },
            "node 'dead': does not reach any h_new_* output",
        ),
        (  # redefining an input
            {
                "x": {"op": "activation_tanh", "input": ["h_prev_0"]},
                "h_new_0": {"op": "activation_tanh", "input": ["x"]},
            },
            "node 'x': 'x' is a cell input",
        ),
        (  # malformed node spec
            {"h_new_0": {"op": "linear", "inputs": ["x", "h_prev_0"]}},
            "node 'h_new_0': expected",
        ),
    ],
    ids=[
        "cycle",
        "dangling",
        "h_prev_range",
        "unknown_op",
        "arity",
        "x_not_linear",
        "no_h_new_0",
        "gap",
        "dead",
        "input_redefined",
        "spec",
    ],
)
def test_malformed_graphs_are_rejected_naming_the_node(space, recepie, message):
    with pytest.raises(GenotypeError) as e:
        space.validate(recepie)
    assert message in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(GenotypeError):  # the JSON-string form fails the same way
        space.validate(json.dumps(recepie))


def test_validate_rejects_bad_json_and_types(space):
    with pytest.raises(GenotypeError, match="not valid JSON"):
        space.validate("{not json")
    with pytest.raises(GenotypeError, match="expected a recepie dict"):
        space.validate(3)
    small = get_space("nasbench_nlp", max_states=1, hidden_states=1)
    with pytest.raises(GenotypeError, match="node 'h_new_1': more than max_states=1"):
        small.validate("lstm")


# -- keys ----------------------------------------------------------------------------------------


def test_key_is_invariant_to_names_order_and_commutative_inputs(space):
    rng = np.random.default_rng(0)
    base = [space.validate(n) for n in ("rnn", "lstm", "gru")]
    base += [space.sample(rng) for _ in range(50)]
    for g in base:
        recepie = space.to_json(g)
        for _ in range(3):
            renamed = space.validate(_rename(recepie, rng))
            assert renamed != g or len(g) == state_size(g)
            assert space.key(renamed) == space.key(g)
        swapped = {
            n: {"op": s["op"], "input": s["input"][::-1] if s["op"] != "blend" else s["input"]}
            for n, s in recepie.items()
        }
        assert space.key(space.validate(swapped)) == space.key(g)


def test_key_distinguishes_blend_order_and_weight_sharing(space):
    gru = space.to_json(space.validate("gru"))
    gru["h_new_0"]["input"] = ["z_act", "h_tilde_act", "h_prev_0"]
    assert space.key(space.validate(gru)) != space.key(space.validate("gru"))
    # two linear nodes (two weight sets) vs one linear read twice: different cells
    two = {
        "l1": {"op": "linear", "input": ["x", "h_prev_0"]},
        "a1": {"op": "activation_tanh", "input": ["l1"]},
        "l2": {"op": "linear", "input": ["x", "h_prev_0"]},
        "a2": {"op": "activation_tanh", "input": ["l2"]},
        "h_new_0": {"op": "elementwise_sum", "input": ["a1", "a2"]},
    }
    shared = {
        "l1": {"op": "linear", "input": ["x", "h_prev_0"]},
        "a1": {"op": "activation_tanh", "input": ["l1"]},
        "a2": {"op": "activation_tanh", "input": ["l1"]},
        "h_new_0": {"op": "elementwise_sum", "input": ["a1", "a2"]},
    }
    assert space.key(space.validate(two)) != space.key(space.validate(shared))
    # which of two identical branches is named first does not matter
    two_swapped = relabel(space.validate(two), {"l1": "l2", "a1": "a2", "l2": "l1", "a2": "a1"})
    assert space.key(two_swapped) == space.key(space.validate(two))


# -- the benchmark's logs --------------------------------------------------------------------------


def test_developer_split_loads_and_every_cell_round_trips(space, gt):
    assert len(gt.runs) == 7099
    assert gt.n_ok == 5738
    assert len(gt) == len(gt.genotypes()) == 6243  # repeats of a cell under other names merge
    for run in gt.runs:
        g = space.validate(run.recepie)
        again = space.from_json(json.loads(json.dumps(space.to_json(g))))
        assert again == g
        assert space.key(again) == space.key(g)


def test_renamed_logged_cells_keep_their_key_and_objective(space, gt):
    rng = np.random.default_rng(1)
    for i in rng.choice(len(gt.runs), size=300, replace=False):
        run = gt.runs[int(i)]
        g = space.validate(run.recepie)
        renamed = space.validate(_rename(json.loads(run.recepie), rng))
        assert space.key(renamed) == space.key(g)
        assert gt.evaluate_one(renamed) == gt.evaluate_one(g)


def test_objectives_match_the_raw_logs(space, gt, zip_path):
    with zipfile.ZipFile(zip_path) as z:
        name = next(n for n in z.namelist() if "_1000002_" in n)
        raw = json.loads(z.read(name))
    r = gt.evaluate_one(space.validate(raw["recepie"]))
    assert r.status == "ok"
    assert r.objective == pytest.approx(math.exp(raw["val_losses"][-1]))
    assert r.metrics["test_ppl"] == pytest.approx(math.exp(raw["test_losses"][-1]))
    assert r.metrics["num_params"] == raw["num_params"] == 9174800
    assert r.cost_s == pytest.approx(sum(raw["wall_times"]))
    assert r.metrics["val_loss_curve"][0] == pytest.approx(raw["val_losses"][0], abs=1e-5)
    assert space.key(space.validate("gru")) == space.key(space.validate(raw["recepie"]))
    results = gt.evaluate(gt.genotypes())
    ok = sorted(x.objective for x in results if x.status == "ok")
    assert ok[0] == pytest.approx(88.50, abs=0.01)
    assert 130 < ok[len(ok) // 2] < 150


@pytest.fixture(scope="module")
def groups(space, gt):
    """The logged runs grouped by cell key, computed here independently of the table."""
    out = {}
    for run in gt.runs:
        out.setdefault(space.key(space.validate(run.recepie)), []).append(run)
    return out


def test_repeated_cells_average_their_ok_runs(space, gt, groups):
    runs = next(rs for rs in groups.values() if sum(r.ok for r in rs) >= 3)
    r = gt.evaluate_one(space.validate(runs[0].recepie))
    ok = [x for x in runs if x.ok]
    assert r.metrics["runs"] == len(runs) and r.metrics["runs_ok"] == len(ok)
    assert r.objective == pytest.approx(np.mean([math.exp(x.val_losses[-1]) for x in ok]))


def test_failed_runs_are_diverged_and_unknown_cells_failed(space, gt, groups):
    for status in ("loss is nan!", "Exception: math range error"):
        runs = next(rs for rs in groups.values() if all(r.status == status for r in rs))
        r = gt.evaluate_one(space.validate(runs[0].recepie))
        assert (r.status, r.objective, r.message) == ("diverged", math.inf, status)
    statuses = [gt.evaluate_one(space.validate(rs[0].recepie)).status for rs in groups.values()]
    assert statuses.count("diverged") == sum(not any(r.ok for r in rs) for rs in groups.values())
    unknown = gt.evaluate_one(space.validate("lstm"))
    assert unknown.status == "failed" and unknown.objective == math.inf
    assert "not in the NAS-Bench-NLP logs" in unknown.message
    assert gt.evaluate_one("not a genotype").status == "failed"


def test_metric_and_epoch_options(space, zip_path, gt, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir))
    assert len(list(cache_dir.glob("evo-nas/nasbench_nlp-*.json"))) == 1
    run = next(r for r in gt.runs if r.recepie_id == 1000002)
    early = NasBenchNLPGroundTruth(space, zip_path, metric="val_loss", epoch=10)
    r = early.evaluate_one(space.validate(run.recepie))
    assert r.objective == pytest.approx(run.val_losses[9])
    assert r.cost_s == pytest.approx(run.wall_times[:10].sum())
    assert len(r.metrics["val_loss_curve"]) == 10
    test = NasBenchNLPGroundTruth(space, zip_path, metric="test_ppl")
    assert test.evaluate_one(space.validate(run.recepie)).objective == pytest.approx(
        math.exp(run.test_losses[-1])
    )
    for bad in (dict(metric="accuracy"), dict(epoch=0), dict(epoch=51)):
        with pytest.raises(ValueError) as e:
            NasBenchNLPGroundTruth(space, zip_path, **bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="file not found"):
        NasBenchNLPGroundTruth(space, tmp_path / "missing.zip")


def test_path_defaults_to_evo_nas_data(space, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EVO_NAS_DATA", raising=False)
    with pytest.raises(ValueError, match="EVO_NAS_DATA is not set"):
        NasBenchNLPGroundTruth(space)
    # a folder of a few logs stands in for the data root; read without the cache
    folder = tmp_path / "data" / "nasbench-nlp"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(data_root / "nasbench-nlp" / "ptb_single_run_dev.zip") as z:
        names = sorted(z.namelist())[:20]
        for n in names:
            (folder / n).write_bytes(z.read(n))
    monkeypatch.setenv("EVO_NAS_DATA", str(tmp_path / "data"))
    with pytest.raises(ValueError, match="ptb_single_run_dev.zip: file not found") as e:
        NasBenchNLPGroundTruth(space)  # the default is the zip under $EVO_NAS_DATA
    assert str(tmp_path / "data") in str(e.value)
    small = NasBenchNLPGroundTruth(space, folder, cache=False)
    assert len(small.runs) == 20 and len(read_runs(folder)) == 20
    assert not (tmp_path / "cache").exists()


# -- random operators ----------------------------------------------------------------------------


def test_samples_follow_the_generator(space):
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(10_000)]
    ops = {}
    for g in samples:
        assert space.validate(space.to_json(g)) == g
        assert sane(g) and state_size(g) == 2
        for _, op, _ in g:
            ops[op] = ops.get(op, 0) + 1
    # linear nodes outnumber each other main op, and every linear kept is usually activated
    assert ops["linear"] > 1.5 * max(ops["blend"], ops["elementwise_prod"], ops["elementwise_sum"])
    assert len({space.key(g) for g in samples}) > 7000  # small graphs repeat now and then
    again = [space.sample(np.random.default_rng(0)) for _ in range(1)]
    assert again[0] == samples[0]


def test_mutations_are_valid_local_and_new(space):
    rng = np.random.default_rng(1)
    g = space.sample(rng)
    sizes = set()
    for i in range(10_000):
        if i % 100 == 0:  # restart the walk now and then so that it stays near the prior
            g = space.sample(rng)
        child = space.mutate(g, rng)
        assert space.validate(space.to_json(child)) == child
        assert space.key(child) != space.key(g)
        assert state_size(child) == state_size(g) and sane(child)
        sizes.add(len(child) - len(g))
        g = child
    assert {-1, 0, 1} <= sizes  # deletions, in-place edits and insertions all happen
    # mutation also works from the benchmark's hand-written cells (which break sanity)
    for name in ("rnn", "lstm", "gru"):
        parent = space.validate(name)
        for _ in range(50):
            assert space.key(space.mutate(parent, rng)) != space.key(parent)


# -- tokens ----------------------------------------------------------------------------------------


def test_tokens_round_trip_and_equivalent_orders(space):
    rng = np.random.default_rng(2)
    vocab = set(space.vocabulary())
    cells = [space.validate(n) for n in ("rnn", "lstm", "gru")] + [
        space.sample(rng) for _ in range(200)
    ]
    n_multi = 0
    for g in cells:
        toks = space.tokens(g)
        assert set(toks) <= vocab
        assert space.key(space.from_tokens(toks)) == space.key(g)
        seqs = space.equivalent_tokens(g)
        assert seqs[0] == toks and len({tuple(s) for s in seqs}) == len(seqs)
        n_multi += len(seqs) > 1
        for s in seqs:
            assert space.key(space.from_tokens(s)) == space.key(g)
    assert n_multi > 100
    # tokens do not depend on node names
    renamed = space.validate(_rename(space.to_json(cells[-1]), rng))
    assert space.tokens(renamed) == space.tokens(cells[-1])
    with pytest.raises(GenotypeError, match="refers to no earlier node"):
        space.from_tokens(["op_activation_tanh", "in_n3", "out_0"])
    with pytest.raises(GenotypeError, match="unknown token"):
        space.from_tokens(["op_linear", "in_x", "bogus"])


# -- cells ----------------------------------------------------------------------------------------


def _reference_forward(g, cell, inputs, state):
    """A direct per-node evaluation with the cell's own weights (its documented layout)."""
    H = cell.hidden_size
    order = cell.order
    spec = {n: (op, ins) for n, op, ins in g}
    linears = [n for n in order if spec[n][0] == "linear"]
    x_slot, src_slot = {}, {}
    for n in linears:
        for s, i in enumerate(spec[n][1]):
            if i == "x":
                x_slot[(n, s)] = len(x_slot)
            else:
                src_slot[(n, s)] = sum(1 for (m, t) in src_slot if spec[m][1][t] == i)
    w_h = dict(zip(cell.sources, cell.w_h))
    acts = {
        "activation_tanh": torch.tanh,
        "activation_sigm": torch.sigmoid,
        "activation_leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
    }
    outs = []
    for t in range(inputs.shape[0]):
        v = {"x": inputs[t]} | {f"h_prev_{i}": s for i, s in enumerate(state)}
        for n in order:
            op, ins = spec[n]
            if op == "linear":
                total = cell.bias[linears.index(n)]
                for s, i in enumerate(ins):
                    if i == "x":
                        k = x_slot[(n, s)]
                        total = total + v["x"] @ cell.w_x[:, k * H : (k + 1) * H]
                    else:
                        k = src_slot[(n, s)]
                        total = total + v[i] @ w_h[i][:, k * H : (k + 1) * H]
                v[n] = total
            elif op == "blend":
                a, b, c = (v[i] for i in ins)
                v[n] = a * b + (1 - a) * c
            elif op == "elementwise_sum":
                v[n] = v[ins[0]] + v[ins[1]]
            elif op == "elementwise_prod":
                v[n] = v[ins[0]] * v[ins[1]]
            else:
                v[n] = acts[op](v[ins[0]])
        state = tuple(v[f"h_new_{i}"] for i in range(len(state)))
        outs.append(state[0])
    return torch.stack(outs), state


def test_cells_compute_their_graph(space):
    rng = np.random.default_rng(3)
    torch.manual_seed(0)
    cells = [space.validate(n) for n in ("rnn", "lstm", "gru")] + [
        space.sample(rng) for _ in range(20)
    ]
    # float64: chains of products grow fast, and float32 rounding would hide real errors
    for g in cells:
        cell = space.build_cell(g, input_size=5, hidden_size=7).double()
        x = torch.randn(4, 3, 5, dtype=torch.float64)
        state = tuple(torch.randn(3, 7, dtype=torch.float64) for _ in range(cell.state_size))
        out, new = cell(x, state)
        ref_out, ref_new = _reference_forward(g, cell, x, state)
        assert torch.allclose(out, ref_out, rtol=1e-10, atol=1e-10)
        assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-10) for a, b in zip(new, ref_new))


def test_gru_cell_matches_the_gru_equations(space):
    torch.manual_seed(0)
    cell = space.build_cell(space.validate("gru"), input_size=4, hidden_size=6)
    # layout: linear order r, z, h_tilde; x blocks in that order; h_prev_0 feeds r and z
    w_r, w_z, w_hx = cell.w_x.split(6, dim=1)
    u_r, u_z = dict(zip(cell.sources, cell.w_h))["h_prev_0"].split(6, dim=1)
    (u_h,) = dict(zip(cell.sources, cell.w_h))["rh"].split(6, dim=1)
    b_r, b_z, b_h = cell.bias
    x, h = torch.randn(3, 2, 4), torch.zeros(2, 6)
    out, _ = cell(x, (h,))
    for t in range(3):
        r = torch.sigmoid(x[t] @ w_r + h @ u_r + b_r)
        z = torch.sigmoid(x[t] @ w_z + h @ u_z + b_z)
        h_tilde = torch.tanh(x[t] @ w_hx + (r * h) @ u_h + b_h)
        h = z * h + (1 - z) * h_tilde
        assert torch.allclose(out[t], h, atol=1e-6)


def test_named_cells_run_forward_and_backward(space):
    for name, size in (("rnn", 1), ("lstm", 2), ("gru", 1)):
        cell = space.build_cell(space.validate(name), input_size=8, hidden_size=16)
        assert cell.state_size == size
        bound = 1 / math.sqrt(16)
        assert all(p.abs().max() <= bound for p in cell.parameters())
        x = torch.randn(6, 2, 8, requires_grad=True)
        out, state = cell(x, cell.init_state(2))
        assert out.shape == (6, 2, 16) and len(state) == size
        (out.pow(2).sum() + sum(s.sum() for s in state)).backward()
        assert x.grad is not None and all(p.grad is not None for p in cell.parameters())


def test_cell_batches_run_every_motif(space):
    genotypes = [space.validate(n) for n in ("rnn", "lstm", "gru")]
    batch = space.build_cell_batch(genotypes, input_size=3, hidden_size=5, seed=0)
    assert batch.num_motifs == 3
    x = torch.randn(4, 3, 2, 3, requires_grad=True)
    out = batch(x)
    assert out.shape == (4, 3, 2, 5)
    out.pow(2).sum().backward()
    assert x.grad is not None and x.grad[:, 1].abs().sum() > 0


def test_state_mask_multiplies_the_incoming_state(space):
    cell = space.build_cell(space.validate("lstm"), input_size=3, hidden_size=4)
    x = torch.randn(2, 1, 3)
    state = (torch.randn(1, 4), torch.randn(1, 4))
    mask = torch.tensor([[0.0, 2.0, 1.0, 0.5]])
    masked, _ = cell(x, state, state_mask=mask)
    manual, _ = cell(x[:1], tuple(s * mask for s in state))
    assert torch.allclose(masked[0], manual[0])


def test_graph_and_features(space):
    g = space.validate("lstm")
    nodes, edges = space.graph(g)
    assert {"x", "h_prev_0", "h_prev_1", "h_new_0", "h_new_1"} <= set(nodes)
    assert len(edges) == sum(len(ins) for _, _, ins in g)
    assert all(a in nodes and b in nodes for a, b in edges)
    rng = np.random.default_rng(4)
    feats = [space.features(space.sample(rng)) for _ in range(20)]
    assert len({f.shape for f in feats}) == 1
    renamed = space.validate(_rename(space.to_json(g), rng))
    assert np.array_equal(space.features(renamed), space.features(g))


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_parse_cache_is_data_and_a_crafted_one_runs_nothing(
    space, zip_path, gt, cache_dir, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir))
    (cached,) = cache_dir.glob("evo-nas/nasbench_nlp-*.json")
    assert statefile.loads(cached.read_bytes())["keys"]  # plain data

    def no_parse(path):
        raise AssertionError("the logs were parsed again")

    with monkeypatch.context() as m:
        m.setattr("ground_truths.nasbench_nlp_logs.read_runs", no_parse)
        again = NasBenchNLPGroundTruth(space, zip_path)
    assert again.genotypes() == gt.genotypes() and len(again.runs) == len(gt.runs)
    for a, b in zip(again.runs[::500], gt.runs[::500]):
        assert (a.recepie_id, a.recepie, a.status, a.num_params) == (
            b.recepie_id, b.recepie, b.status, b.num_params
        )  # fmt: skip
        np.testing.assert_array_equal(a.val_losses, b.val_losses)
        np.testing.assert_array_equal(a.wall_times, b.wall_times)

    crafted_dir = tmp_path / "crafted"
    monkeypatch.setenv("XDG_CACHE_HOME", str(crafted_dir))
    marker = tmp_path / "pwned"
    target = crafted_dir / "evo-nas" / cached.name
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps(_Payload(marker)))
    rebuilt = NasBenchNLPGroundTruth(space, zip_path)  # the crafted file is parsed as JSON
    assert not marker.exists()
    assert len(rebuilt) == len(gt)
    assert statefile.loads(target.read_bytes())["keys"]  # and replaced by a good one
