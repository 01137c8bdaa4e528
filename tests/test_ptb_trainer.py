"""PTB trainer: it learns, diverges and fails gracefully, resumes exactly, caches, and its CLI."""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import evo_nas
from evo_nas.cli.train import train as train_cmd
from ground_truths import GROUND_TRUTHS
from ground_truths.ptb_corpus import load_corpus
from ground_truths.ptb_model import build_model
from ground_truths.ptb_trainer import (
    RESULTS_VERSION,
    PTBTrainer,
    _Averager,
    make_config,
)
from search_spaces import get_space

SPACE = get_space("darts_rnn")


V2 = SPACE.validate("DARTS_V2")
# a few batches only: for behaviour that does not need a trained model
QUICK = {"preset": "tiny", "epochs": 3, "epoch_batches": 4, "eval_tokens": 640}


def quick(**train) -> PTBTrainer:
    """The quick tiny training with ``train`` overrides, on the CPU."""
    device = train.pop("device", "cpu")
    limit = train.pop("time_limit_s", None)
    return PTBTrainer(SPACE, train={**QUICK, **train}, device=device, time_limit_s=limit)


def _unigram_ppl(tokens: torch.Tensor) -> float:
    corpus = load_corpus()
    counts = collections.Counter(corpus.train.tolist())
    n = len(corpus.train)
    return math.exp(-sum(math.log(counts[int(w)] / n) for w in tokens) / len(tokens))


def test_tiny_training_beats_the_unigram_model_on_real_ptb() -> None:
    trainer = GROUND_TRUTHS.create("ptb_trainer", space=SPACE, train="tiny", device="cpu")
    result = trainer.evaluate_one(V2)
    assert result.status == "ok", result.message
    unigram = _unigram_ppl(load_corpus().valid[: trainer.config.eval_tokens])
    assert 600 < unigram < 900
    assert result.objective < 0.85 * unigram, (result.objective, unigram)
    curve = result.metrics["curve"]
    assert [row["epoch"] for row in curve] == [1, 2, 3]
    assert result.metrics["val_ppl"] == result.objective == min(r["val_ppl"] for r in curve)
    assert curve[-1]["val_ppl"] < curve[0]["val_ppl"]
    assert "test_ppl" not in result.metrics and result.cost_s > 0


def test_a_huge_learning_rate_is_a_recorded_divergence() -> None:
    trainer = quick(lr=1e5, clip=100.0)
    result = trainer.evaluate_one(V2)
    assert result.status == "diverged"
    assert result.objective == math.inf
    assert "training loss" in result.message


def test_an_exception_and_the_time_limit_are_failures(monkeypatch) -> None:
    slow = quick(time_limit_s=1e-3)
    result = slow.evaluate_one(V2)
    assert (result.status, result.message, result.objective) == ("failed", "time limit", math.inf)

    def broken(*args, **kwargs):
        raise RuntimeError("no such cell")

    monkeypatch.setattr(SPACE, "build_cell", broken)
    result = quick().evaluate_one(V2)
    assert result.status == "failed"
    assert result.message == "RuntimeError: no such cell"


def _strip_times(curve: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in curve]


def test_resume_mid_training_retraces_the_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    options = {"test": True}
    plain = quick(**options)
    plain.attach(tmp_path / "plain")
    expected = plain.evaluate_one(V2)
    assert expected.status == "ok" and math.isfinite(expected.metrics["test_ppl"])

    interrupted = quick(**options)
    interrupted.attach(tmp_path / "resumed")

    def kill_in_epoch_3(event: dict) -> None:
        if event["event"] == "batch" and event["epoch"] == 3 and event["batch"] == 2:
            raise KeyboardInterrupt

    interrupted.progress = kill_in_epoch_3
    with pytest.raises(KeyboardInterrupt):
        interrupted.evaluate_one(V2)
    assert len(list((tmp_path / "resumed" / "checkpoints").glob("*.pt"))) == 1
    assert not list((tmp_path / "resumed" / "results").glob("*.json"))

    resumed = quick(**options)
    resumed.attach(tmp_path / "resumed")
    epochs_trained = []
    resumed.progress = lambda e: e["event"] == "epoch" and epochs_trained.append(e["epoch"])
    result = resumed.evaluate_one(V2)
    assert epochs_trained == [3]  # epochs 1-2 came from the checkpoint
    assert _strip_times(result.metrics["curve"]) == _strip_times(expected.metrics["curve"])
    assert result.objective == expected.objective
    assert result.metrics["test_ppl"] == expected.metrics["test_ppl"]
    # finished: the checkpoint is gone and the result is cached, nothing trains again
    assert not list((tmp_path / "resumed" / "checkpoints").glob("*.pt"))
    again = quick(**options)
    again.attach(tmp_path / "resumed")
    again.progress = lambda e: pytest.fail("trained a cached cell again")
    assert again.evaluate_one(V2) == result
    # results of an older model version are not reused
    monkeypatch.setattr("ground_truths.ptb_trainer.RESULTS_VERSION", RESULTS_VERSION + 1)
    newer = quick(**options)
    newer.attach(tmp_path / "resumed")
    retrained = []
    newer.progress = lambda e: e["event"] == "epoch" and retrained.append(e["epoch"])
    assert newer.evaluate_one(V2).objective == result.objective and retrained == [1, 2, 3]
    monkeypatch.undo()
    # another config (seed) is another cache entry
    other = quick(**{**options, "seed": 1, "epochs": 1})
    other.attach(tmp_path / "resumed")
    assert other.evaluate_one(V2).objective != result.objective


def test_options_are_validated_with_one_line_errors() -> None:
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        PTBTrainer(SPACE, train="huge")
    with pytest.raises(ValueError, match="dropout: Input should be less than 1"):
        PTBTrainer(SPACE, train={"preset": "tiny", "dropout": 1.5})
    with pytest.raises(ValueError, match="device 'gpu0' is not a torch device"):
        PTBTrainer(SPACE, train="tiny", device="gpu0")
    with pytest.raises(ValueError, match="missing"):
        PTBTrainer(SPACE, train="tiny", data_dir=Path("/nonexistent/ptb"))
    with pytest.raises(ValueError, match="hidden: unknown key"):
        make_config("cpu", hidden=3)
    with pytest.raises(ValueError, match="lr: Input should be a valid number"):
        make_config("cpu", lr="abc")
    # a config writes the training as one mapping, checked by its type
    with pytest.raises(
        evo_nas.ConfigError,
        match="ground_truth.options.train: epochs: Input should be a valid integer",
    ):
        evo_nas.build("ground_truth", "ptb_trainer", {"train": {"epochs": True}}, space=SPACE)
    built = evo_nas.build("ground_truth", "ptb_trainer", {"train": {"preset": "tiny"}}, space=SPACE)
    assert built.config == make_config("tiny")
    paper = make_config("paper", epochs=10)
    assert (paper.emsize, paper.nhid, paper.lr, paper.clip, paper.batch_size) == (
        850,
        850,
        20.0,
        0.25,
        64,
    )
    assert (paper.dropout, paper.dropouth, paper.dropoutx, paper.dropouti, paper.dropoute) == (
        0.75,
        0.25,
        0.75,
        0.2,
        0.1,
    )
    assert make_config("cpu").digest() != make_config("cpu", seed=1).digest()


def test_asgd_averages_the_iterates_since_the_switch() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    avg = _Averager([p])  # switched on at [1, 2]; averages the iterates after each step
    iterates = []
    for delta in (1.0, 3.0, -2.0):
        with torch.no_grad():
            p.add_(delta)
        avg.update([p])
        iterates.append(p.detach().clone())
    expected = torch.stack(iterates).mean(0)
    assert torch.allclose(avg.avg[0], expected)
    live = p.detach().clone()
    avg.swap([p])
    assert torch.allclose(p.detach(), expected) and torch.equal(avg.avg[0], live)
    avg.swap([p])
    assert torch.equal(p.detach(), live)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_training_follows_the_cpu_training() -> None:
    # without dropout nothing random is drawn on the device: the two runs differ by rounding
    nodrop = dict.fromkeys(("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"), 0.0)
    cpu = quick(**nodrop).evaluate_one(V2)
    gpu = quick(**nodrop, device="cuda").evaluate_one(V2)
    assert cpu.status == gpu.status == "ok"
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-3)


def test_model_ties_the_decoder_and_projects_when_sizes_differ() -> None:
    model = build_model(SPACE, V2, 100, emsize=16, nhid=24, seed=3, dropout=0.5, dropoute=0.1)
    assert model.decoder.weight is model.encoder.weight
    assert model.proj is not None and model.proj.weight.shape == (16, 24)
    same = build_model(SPACE, V2, 100, emsize=16, nhid=24, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    tokens = torch.randint(0, 100, (7, 5))
    gen = torch.Generator().manual_seed(0)
    logits, raw, (h,) = model(tokens, model.init_state(5), gen)
    assert logits.shape == (35, 100) and raw.shape == (7, 5, 24) and h.shape == (5, 24)
    model.eval()
    a, _, _ = model(tokens, model.init_state(5))
    b, _, _ = model(tokens, model.init_state(5))
    assert torch.equal(a, b)  # no dropout in evaluation


def test_train_command_writes_curve_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--genotype", "DARTS_V2", "--preset", "tiny", "--epochs", "2", "--device", "cpu"]
    args += ["--set", "epoch_batches=3", "--set", "eval_tokens=640", "--out", str(out)]
    run = CliRunner().invoke(train_cmd, args)
    assert run.exit_code == 0, run.output
    report = json.loads((out / "curve.json").read_text())
    assert report["status"] == "ok" and len(report["curve"]) == 2
    assert report["val_ppl"] > 1 and report["test_ppl"] > 1
    assert f"valid ppl {report['val_ppl']:.2f}" in run.output
    assert (out / "curve.png").stat().st_size > 1000
    bad = CliRunner().invoke(train_cmd, ["--genotype", "DARTS_V2", "--set", "hidden=3"])
    assert bad.exit_code == 2 and "unknown option 'hidden'" in bad.output
