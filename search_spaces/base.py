"""The contract every genotype encoding fulfils, and the recurrent-cell module contract.

A genotype is an immutable, hashable value that the space can turn to and from JSON. The
engine, the surrogates and the trainer touch genotypes only through a :class:`SearchSpace`,
so a new encoding is one subclass of it and nothing else.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

Genotype = Hashable


def seeded_generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU random stream fixed by ``seed`` and ``keys`` alone, independent of every other
    stream (one per node position, per dish seed...), so what one draw yields never depends on
    how many other draws a batch makes."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


class GenotypeError(ValueError):
    """A malformed genotype; the message is one line naming the part that is wrong."""


class RecurrentCell(nn.Module, abc.ABC):
    """A recurrent cell hosting a motif, usable by any model (PTB LM, Petri dish).

    ``forward(inputs, state, state_mask=None)`` takes ``inputs`` of shape
    ``[T, B, input_size]`` and a tuple of ``state_size`` tensors ``[B, hidden_size]`` and
    returns ``(outputs [T, B, hidden_size], new_state)``; ``outputs[t]`` is ``h_new_0`` at
    step ``t``. ``state_mask`` (``[B, hidden_size]``, optional) multiplies every recurrent
    state vector before it enters the cell at each step: variational dropout on the hidden
    state, applied by the host model.
    """

    def __init__(self, input_size: int, hidden_size: int, state_size: int = 1) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = state_size

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The zero state for a batch."""
        p = next(self.parameters(), None)
        device = device if device is not None else (p.device if p is not None else None)
        dtype = dtype if dtype is not None else (p.dtype if p is not None else torch.float32)
        return tuple(
            torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
            for _ in range(self.state_size)
        )

    @abc.abstractmethod
    def forward(
        self,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        state_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run the cell over a sequence."""


class CellBatch(nn.Module, abc.ABC):
    """M motifs run at once, each with its own weights: the batched form of a cell.

    ``forward(inputs)`` takes ``inputs`` of shape ``[T, M, B, input_size]`` (motif ``m``
    reads ``inputs[:, m]``), starts every motif from the zero state and returns the outputs
    ``[T, M, B, hidden_size]`` (``h_new_0`` per step). Every parameter belongs to exactly one
    motif, so the gradient of a sum of per-motif losses gives each motif its own gradient;
    the Petri dish trains many motifs as one computation by relying on that, swapping the
    parameters with :func:`torch.func.functional_call`.
    """

    def __init__(self, num_motifs: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.num_motifs = num_motifs
        self.input_size = input_size
        self.hidden_size = hidden_size

    @abc.abstractmethod
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Run every motif over its sequence from the zero state."""

    def motif_sq_norms(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each motif's squared norm ``[M]`` of tensors shaped like the named parameters (the
        dish's per-motif gradient norm); batched cells lead every parameter by the motif."""
        return sum(t.reshape(self.num_motifs, -1).pow(2).sum(1) for t in named.values())


class StackedCells(CellBatch):
    """The generic :class:`CellBatch`: one :class:`RecurrentCell` per motif, run in a loop."""

    def __init__(self, cells: Sequence[RecurrentCell]) -> None:
        if not cells:
            raise ValueError("StackedCells needs at least one cell")
        super().__init__(len(cells), cells[0].input_size, cells[0].hidden_size)
        self.cells = nn.ModuleList(cells)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs.size(2)
        outputs = [
            cell(inputs[:, m], cell.init_state(batch, inputs.device, inputs.dtype))[0]
            for m, cell in enumerate(self.cells)
        ]
        return torch.stack(outputs, dim=1)

    def motif_sq_norms(self, named: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per cell: the parameters are named ``cells.<motif>.<name>``."""
        out = torch.zeros(self.num_motifs)
        for name, t in named.items():
            out = out.to(t)
            out[int(name.split(".")[1])] += t.pow(2).sum()
        return out


class StackedActivations(nn.Module):
    """The generic batched activation: motif ``m``'s module applied to ``z[m]``."""

    def __init__(self, activations: Sequence[nn.Module]) -> None:
        super().__init__()
        self.activations = nn.ModuleList(activations)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([act(z[m]) for m, act in enumerate(self.activations)])


class SearchSpace(abc.ABC):
    """A genotype encoding: sampling, mutation, validation, canonical keys, tokens, cells.

    Constructor keyword arguments are the space's options (from ``space.options`` in the
    YAML). Randomness always comes from the ``rng`` argument (a ``numpy.random.Generator``),
    never from global state, so a search is reproducible from its seed.
    """

    #: registry name of the space
    name: str = ""
    #: what a genotype describes: ``"cell"`` (a recurrent cell, hosted by recurrent models)
    #: or ``"activation"`` (an elementwise activation, hosted by MLPs); the Petri dish picks
    #: its network from it
    motif: str = "cell"

    def identity(self) -> tuple[str, list[tuple[str, str]]]:
        """What a motif built from this space depends on besides its genotype: the space's
        type and public options. Caches of per-motif results (the Petri dish's records) are
        kept under it, so it must be the same in every process for the same space."""
        options = sorted((k, repr(v)) for k, v in vars(self).items() if not k.startswith("_"))
        return type(self).__qualname__, options

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Genotype:
        """A random valid genotype."""

    @abc.abstractmethod
    def mutate(self, genotype: Genotype, rng: np.random.Generator) -> Genotype:
        """One local edit of ``genotype``: valid, and never the input itself."""

    @abc.abstractmethod
    def validate(self, obj: Any) -> Genotype:
        """Parse a user-written genotype (JSON value, string or a built-in name).

        Raises :class:`GenotypeError` with one line naming what is wrong.
        """

    @abc.abstractmethod
    def key(self, genotype: Genotype) -> str:
        """Canonical key: two encodings of the same cell get the same key."""

    def from_key(self, key: str) -> Genotype:
        """The genotype a :meth:`key` names, so that a key printed by a report can be used
        again (``key(from_key(k)) == k``). This default reads the key with :meth:`validate`
        and refuses it unless it is the genotype's key; spaces whose keys ``validate`` cannot
        read override it. Raises :class:`GenotypeError` in one line."""
        genotype = self.validate(key)
        if self.key(genotype) != key.strip():
            raise GenotypeError(f"'{key[:60]}' is not a key of space '{self.name}'")
        return genotype

    @abc.abstractmethod
    def to_json(self, genotype: Genotype) -> Any:
        """A JSON-serialisable value that :meth:`from_json` turns back into ``genotype``."""

    def from_json(self, obj: Any) -> Genotype:
        """Inverse of :meth:`to_json`."""
        return self.validate(obj)

    @abc.abstractmethod
    def tokens(self, genotype: Genotype) -> list[str]:
        """The genotype as a token sequence (for sequence encoders such as NAO)."""

    @abc.abstractmethod
    def vocabulary(self) -> list[str]:
        """Every token :meth:`tokens` can produce."""

    def from_tokens(self, tokens: Sequence[str]) -> Genotype:
        """Inverse of :meth:`tokens`; raises :class:`GenotypeError` for an invalid sequence."""
        raise NotImplementedError(f"space '{self.name}' cannot decode token sequences")

    def equivalent_tokens(self, genotype: Genotype) -> list[list[str]]:
        """Token sequences that encode the same cell (data augmentation for encoders)."""
        return [self.tokens(genotype)]

    @abc.abstractmethod
    def build_cell(self, genotype: Genotype, input_size: int, hidden_size: int) -> RecurrentCell:
        """A freshly initialised module computing the cell."""

    def build_cell_batch(
        self,
        genotypes: Sequence[Genotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> CellBatch:
        """A freshly initialised :class:`CellBatch` running ``genotypes`` at once.

        With ``seed``, every motif's weights are drawn from the same seeded stream, so motifs
        whose parameters have the same shapes start from equal weights (the Petri dish needs
        differences to come from the motif, not the initialisation). This default stacks
        :meth:`build_cell` cells and loops over them; spaces override it with a vectorised one.
        """
        cells = []
        for g in genotypes:
            if seed is None:
                cells.append(self.build_cell(g, input_size, hidden_size))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                cells.append(self.build_cell(g, input_size, hidden_size))
        return StackedCells(cells)

    def build_activation(self, genotype: Genotype) -> nn.Module:
        """The motif as an elementwise activation module (spaces whose motif is one)."""
        raise NotImplementedError(f"space '{self.name}' does not describe activations")

    def build_activation_batch(self, genotypes: Sequence[Genotype]) -> nn.Module:
        """M activations at once: ``forward(z)`` applies motif ``m`` to ``z[m]`` for ``z`` of
        shape ``[M, ...]``. This default loops over :meth:`build_activation` modules."""
        return StackedActivations([self.build_activation(g) for g in genotypes])

    def grid(self, points: int) -> list[Genotype]:
        """``points`` genotypes evenly covering a one-dimensional space, in order (for sweep
        plots of predicted and true objective); multi-dimensional spaces have none."""
        raise NotImplementedError(f"space '{self.name}' is not one-dimensional")

    def named(self) -> dict[str, Genotype]:
        """Built-in genotypes usable by name wherever a genotype is accepted."""
        return {}

    def describe(self, genotype: Genotype) -> str:
        """A short human-readable form for tables and logs."""
        return str(self.to_json(genotype))

    def graph(self, genotype: Genotype) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The cell as a drawing: ``({node: label}, [(src, dst), ...])``."""
        raise NotImplementedError(f"space '{self.name}' does not describe its cells as a graph")

    def descriptors(self, genotype: Genotype) -> dict[str, float]:
        """Named facts about a cell read off its genotype before any training, the same
        names for every cell of the space (none by default). A surrogate's read-out may weigh
        them; two names have a meaning every space shares, and the Petri dish's zero-shot
        ranking uses them when a space gives them: ``input_delay``, the steps before the
        current input can reach the cell's output (0: at once), and ``input_gated``, 1 when
        the input reaches the output through a multiplicative gate."""
        return {}

    def features(self, genotype: Genotype) -> np.ndarray:
        """A fixed-length vector for distances between cells (pool mode): token counts.

        Spaces override it with structural features (op counts, edge types) when bag-of-tokens
        is a poor proxy of how far two cells are.
        """
        index = {t: i for i, t in enumerate(self.vocabulary())}
        out = np.zeros(len(index))
        for t in self.tokens(genotype):
            out[index[t]] += 1
        return out
