"""The NAO network: LSTM encoder, MLP predictor and attention LSTM decoder (Luo et al. 2018).

Token ids 0, 1, 2 are reserved for padding, start-of-sequence and end-of-sequence; the
space's vocabulary follows. Sequences in a batch are right-padded; the encoder is
unidirectional, so padding never changes the outputs at real positions, and the masked mean
over real positions is the architecture embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PAD, SOS, EOS = 0, 1, 2
N_SPECIAL = 3


class NAOModel(nn.Module):
    """Encoder -> (normalised outputs, normalised mean) -> predictor and decoder."""

    def __init__(
        self,
        n_tokens: int,
        embedding: int,
        hidden: int,
        mlp_layers: int,
        mlp_hidden: int,
        dropout: float,
        decoder: bool,
    ) -> None:
        super().__init__()
        self.enc_embedding = nn.Embedding(n_tokens, embedding, padding_idx=PAD)
        self.encoder = nn.LSTM(embedding, hidden, batch_first=True)
        layers: list[nn.Module] = []
        width = hidden
        for _ in range(mlp_layers):
            layers += [nn.Linear(width, mlp_hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = mlp_hidden
        layers.append(nn.Linear(width, 1))
        self.predictor = nn.Sequential(*layers)
        self.has_decoder = decoder
        if decoder:
            self.dec_embedding = nn.Embedding(n_tokens, embedding, padding_idx=PAD)
            self.decoder = nn.LSTM(embedding, hidden, batch_first=True)
            self.attn_out = nn.Linear(2 * hidden, hidden)
            self.logits = nn.Linear(hidden, n_tokens)

    @staticmethod
    def embed(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Architecture embedding: L2-normalised masked mean of the encoder outputs."""
        m = mask.unsqueeze(-1).to(outputs.dtype)
        mean = (outputs * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.normalize(mean, p=2, dim=-1)

    def encode(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position L2-normalised encoder outputs ``[B, L, H]`` and the padding mask."""
        mask = seqs != PAD
        out, _ = self.encoder(self.enc_embedding(seqs))
        return F.normalize(out, p=2, dim=-1), mask

    def predict_from(self, arch: torch.Tensor) -> torch.Tensor:
        """Predicted normalised objective in (0, 1) from an architecture embedding."""
        return torch.sigmoid(self.predictor(arch)).squeeze(-1)

    def _attend(
        self, dec_out: torch.Tensor, enc_out: torch.Tensor, enc_mask: torch.Tensor
    ) -> torch.Tensor:
        scores = torch.bmm(dec_out, enc_out.transpose(1, 2))  # [B, T, L]
        scores = scores.masked_fill(~enc_mask.unsqueeze(1), float("-inf"))
        mix = torch.bmm(torch.softmax(scores, dim=-1), enc_out)
        combined = torch.tanh(self.attn_out(torch.cat([mix, dec_out], dim=-1)))
        return self.logits(combined)

    def decode_logits(
        self,
        enc_out: torch.Tensor,
        enc_mask: torch.Tensor,
        arch: torch.Tensor,
        dec_inputs: torch.Tensor,
    ) -> torch.Tensor:
        """Teacher-forced decoder logits ``[B, T, n_tokens]`` for the given input tokens."""
        state = (arch.unsqueeze(0).contiguous(), arch.unsqueeze(0).contiguous())
        dec_out, _ = self.decoder(self.dec_embedding(dec_inputs), state)
        return self._attend(dec_out, enc_out, enc_mask)

    @torch.no_grad()
    def greedy_decode(
        self,
        enc_out: torch.Tensor,
        enc_mask: torch.Tensor,
        arch: torch.Tensor,
        max_len: int,
        position: torch.Tensor | None = None,
        follows: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Greedy token ids (without EOS) per row, ending by ``max_len`` tokens at the latest.

        Constrained decoding, when ``position`` ``[max_len + 1, n_tokens]`` and ``follows``
        ``[n_tokens, n_tokens]`` are given: at step t only tokens allowed at position t that
        may follow the previous token, or if none is, any token that may follow it.
        """
        batch = enc_out.size(0)
        state = (arch.unsqueeze(0).contiguous(), arch.unsqueeze(0).contiguous())
        token = torch.full((batch, 1), SOS, dtype=torch.long, device=enc_out.device)
        done = torch.zeros(batch, dtype=torch.bool, device=enc_out.device)
        seqs: list[list[int]] = [[] for _ in range(batch)]
        for t in range(max_len + 1):
            dec_out, state = self.decoder(self.dec_embedding(token), state)
            logits = self._attend(dec_out, enc_out, enc_mask)[:, 0]
            ok = torch.ones_like(logits, dtype=torch.bool)
            ok[:, [PAD, SOS]] = False
            if position is not None and follows is not None:
                nxt = follows[token[:, 0]] & ok
                both = nxt & position[t]
                ok = torch.where(both.any(-1, keepdim=True), both, nxt)
            if t == max_len:  # out of room: the sequence must end here
                ok = torch.zeros_like(ok)
                ok[:, EOS] = True
            token = logits.masked_fill(~ok, float("-inf")).argmax(-1, keepdim=True)
            for b in range(batch):
                if done[b]:
                    continue
                if int(token[b]) == EOS:
                    done[b] = True
                else:
                    seqs[b].append(int(token[b]))
            if bool(done.all()):
                break
        return seqs
