"""A word-level RNN language model hosting any search space's recurrent cell.

The DARTS/AWD-LSTM recipe: embedding with whole-word (embedding) dropout, variational
("locked": one mask per sequence, shared over time) dropout on the embeddings, the cell's
inputs, its recurrent state and its outputs, and a decoder tied to the embedding (through a
projection when the hidden size differs from the embedding size). Every dropout mask is
drawn from an explicit ``torch.Generator``, so training is reproducible from a seed and
resumable from a checkpoint (the trainer owns the generator and passes it in).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces import Genotype, RecurrentCell, SearchSpace


def _mask(
    shape: tuple[int, ...], p: float, like: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    """A dropout mask with entries 0 or 1/(1-p)."""
    keep = 1.0 - p
    m = torch.empty(shape, device=like.device, dtype=like.dtype).bernoulli_(keep, generator=gen)
    return m / keep


class RNNModel(nn.Module):
    """Embedding -> cell -> (projection) -> tied decoder, with DARTS's five dropouts.

    Dropout names follow DARTS' ``train.py``: ``dropout`` (cell outputs), ``dropouth``
    (recurrent state), ``dropoutx`` (cell inputs), ``dropouti`` (embeddings), ``dropoute``
    (whole words of the embedding matrix). The embedding (and so the tied decoder) starts
    uniform in ``+-init_range``.
    """

    def __init__(
        self,
        cell: RecurrentCell,
        ntoken: int,
        emsize: int,
        dropout: float = 0.0,
        dropouth: float = 0.0,
        dropoutx: float = 0.0,
        dropouti: float = 0.0,
        dropoute: float = 0.0,
        init_range: float = 0.1,
    ) -> None:
        super().__init__()
        if cell.input_size != emsize:
            raise ValueError(f"cell input size {cell.input_size} != embedding size {emsize}")
        self.ntoken, self.emsize, self.nhid = ntoken, emsize, cell.hidden_size
        self.dropout, self.dropouth, self.dropoutx = dropout, dropouth, dropoutx
        self.dropouti, self.dropoute = dropouti, dropoute
        self.encoder = nn.Embedding(ntoken, emsize)
        self.cell = cell
        self.proj = nn.Linear(self.nhid, emsize, bias=False) if self.nhid != emsize else None
        self.decoder = nn.Linear(emsize, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -init_range, init_range)
        nn.init.zeros_(self.decoder.bias)

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """The cell's zero state for a batch, on the model's device."""
        w = self.encoder.weight
        return self.cell.init_state(batch_size, device=w.device, dtype=w.dtype)

    def forward(
        self,
        tokens: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """``tokens [T, B]`` -> (logits ``[T*B, ntoken]``, raw cell outputs, new state).

        In training mode the dropout masks come from ``generator`` (on the model's device;
        torch's default generator when ``None``).
        """
        gen = generator
        weight = self.encoder.weight
        if self.training and self.dropoute > 0:
            weight = weight * _mask((weight.size(0), 1), self.dropoute, weight, gen)
        emb = F.embedding(tokens, weight)
        _, batch, _ = emb.shape
        state_mask = None
        if self.training:
            for p in (self.dropouti, self.dropoutx):  # embeddings, then the cell's inputs
                if p > 0:
                    emb = emb * _mask((1, batch, self.emsize), p, emb, gen)
            if self.dropouth > 0:
                state_mask = _mask((batch, self.nhid), self.dropouth, emb, gen)
        raw, new_state = self.cell(emb, state, state_mask)
        out = raw
        if self.training and self.dropout > 0:
            out = out * _mask((1, batch, self.nhid), self.dropout, out, gen)
        if self.proj is not None:
            out = self.proj(out)
        return self.decoder(out.reshape(-1, self.emsize)), raw, new_state


def build_model(
    space: SearchSpace,
    genotype: Genotype,
    ntoken: int,
    emsize: int,
    nhid: int,
    seed: int = 0,
    **options: float,
) -> RNNModel:
    """An :class:`RNNModel` around ``space.build_cell(genotype, emsize, nhid)``, on the CPU.

    Cells initialise their weights from torch's global generator, so the model is built
    under a forked generator seeded with ``seed``: the same weights on every device, and the
    caller's random state untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cell = space.build_cell(genotype, emsize, nhid)
        return RNNModel(cell, ntoken, emsize, **options)
