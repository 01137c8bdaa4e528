"""Training throughput of the PTB language model with the DARTS_V2 cell, against references.

Tokens per second of one training step (forward, backward, clipping, SGD step) at batch 64
and BPTT 35, for three language models of the same size, measured in one process:

- ``darts``:   the trainer's model with the search space's ``DartsCell`` (the nodes reading
  one predecessor share a matmul);
- ``pernode``: the same cell written as DARTS wrote it (one matmul per node per step, the
  states gathered with ``torch.cat``), defined here and checked to compute the same outputs;
- ``lstm``:    ``torch.nn.LSTM`` (fused kernel) as the cell.

Usage: ``python benchmarks/bench_trainer.py [--nhid 128 850] [--steps 5] [--threads N]
[--device cuda]``.
Goals (CPU): darts >= 1.5x pernode and >= 0.5x lstm at nhid 850.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from evo_nas_common.devices import resolve_device
from ground_truths.ptb_model import RNNModel
from search_spaces import RecurrentCell, get_space
from search_spaces.darts_ops import ACTIVATIONS
from search_spaces.darts_rnn import DartsCell

NTOKEN, BATCH, BPTT = 10_000, 64, 35


class PerNodeDartsCell(RecurrentCell):
    """DARTS' ``DARTSCell`` (rnn/model.py), weights shared with a ``DartsCell``."""

    def __init__(self, ref: DartsCell) -> None:
        super().__init__(ref.input_size, ref.hidden_size, 1)
        self.genotype, self.outputs = ref.genotype, ref.outputs
        self.w0 = nn.Parameter(ref.w0.detach().clone())
        self.ws = nn.ParameterList(nn.Parameter(w.detach().clone()) for w in ref.ws)

    def forward(self, inputs, state, state_mask=None):
        (h,) = state
        hsz, outs = self.hidden_size, []
        for t in range(inputs.size(0)):
            h_in = h * state_mask if state_mask is not None else h
            c0, h0 = torch.split(torch.cat([inputs[t], h_in], -1).mm(self.w0), hsz, -1)
            states = (h + c0.sigmoid() * (h0.tanh() - h)).unsqueeze(0)
            for i, (name, pred) in enumerate(self.genotype):
                s_prev = states[pred]
                s_in = s_prev * state_mask if state_mask is not None else s_prev
                c, hh = torch.split(s_in.mm(self.ws[i]), hsz, -1)
                s = s_prev + c.sigmoid() * (ACTIVATIONS[name](hh) - s_prev)
                states = torch.cat([states, s.unsqueeze(0)], 0)
            h = torch.mean(states[self.outputs], dim=0)
            outs.append(h)
        return torch.stack(outs), (h,)


class LSTMCell(RecurrentCell):
    """``torch.nn.LSTM`` behind the RecurrentCell interface (state: h and c)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 2)
        self.lstm = nn.LSTM(input_size, hidden_size)

    def forward(self, inputs, state, state_mask=None):
        h, c = state
        h = h * state_mask if state_mask is not None else h
        out, (h, c) = self.lstm(inputs, (h.unsqueeze(0), c.unsqueeze(0)))
        return out, (h.squeeze(0), c.squeeze(0))


def _models(nhid: int) -> dict[str, RNNModel]:
    space = get_space("darts_rnn")
    torch.manual_seed(0)
    darts = space.build_cell(space.validate("DARTS_V2"), nhid, nhid)
    pernode = PerNodeDartsCell(darts)
    x = torch.randn(5, 3, nhid)
    a, _ = darts(x, darts.init_state(3))
    b, _ = pernode(x, pernode.init_state(3))
    assert torch.allclose(a, b, atol=1e-5), "the per-node reference computes another cell"
    cells = {"darts": darts, "pernode": pernode, "lstm": LSTMCell(nhid, nhid)}
    return {k: RNNModel(c, NTOKEN, nhid, 0.75, 0.25, 0.75, 0.2, 0.1) for k, c in cells.items()}


def _time_steps(model: RNNModel, steps: int, warmup: int) -> list[float]:
    """Seconds per training step (forward + backward + clip + SGD step)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(0)
    data = torch.randint(0, NTOKEN, (BPTT + 1, BATCH), generator=gen, device=device)
    x, y = data[:-1], data[1:].reshape(-1)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=20.0, weight_decay=8e-7)
    model.train()
    state = model.init_state(BATCH)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        state = tuple(s.detach() for s in state)
        logits, raw, state = model(x, state, gen)
        loss = F.cross_entropy(logits, y) + 1e-3 * (raw[1:] - raw[:-1]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 0.25)
        opt.step()
        loss.item()  # waits for the device
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nhid", type=int, nargs="+", default=[128, 850])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, batch "
          f"{BATCH}, bptt {BPTT}, vocabulary {NTOKEN}; median of {args.steps} steps")  # fmt: skip
    for nhid in args.nhid:
        rates = {}
        # interleave the models, one step each round, so that a change in machine load
        # (shared cores) hits all three alike
        models = {k: m.to(device) for k, m in _models(nhid).items()}
        samples: dict[str, list[float]] = {k: [] for k in models}
        for m in models.values():
            _time_steps(m, 0, args.warmup)
        for _ in range(args.steps):
            for k, m in models.items():
                samples[k] += _time_steps(m, 1, 0)
        for k, ts in samples.items():
            step = statistics.median(ts)
            rates[k] = BATCH * BPTT / step
            print(f"nhid {nhid:4d}  {k:8s} {rates[k]:9.0f} tokens/s  ({step:.3f} s/step)")
        # multiply-adds per token ~ parameters (the tied embedding/decoder matrix counted once,
        # as the decoder): the speed ratio a purely compute-bound run would show
        macs = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
        print(
            f"nhid {nhid:4d}  darts / pernode = {rates['darts'] / rates['pernode']:.2f}x   "
            f"darts / lstm = {rates['darts'] / rates['lstm']:.2f}x   "
            f"(compute-bound ceiling darts / lstm = {macs['lstm'] / macs['darts']:.2f}x)"
        )


if __name__ == "__main__":
    main()
