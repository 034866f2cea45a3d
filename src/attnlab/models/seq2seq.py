"""Seq2Seq with Bahdanau attention (Bahdanau et al., 2015; d2l 11.4).

A GRU encoder reads the source; at every step a GRU decoder queries the encoder outputs with its top-layer
hidden state through an injected scorer (additive by default) and feeds the context, concatenated with the
previous token's embedding, into its GRU.

Shape legend: B batch, S source length, T target length, E embedding size, H hidden size, L GRU layers,
V target vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from attnlab.attention.attention import Attention
from attnlab.attention.scorers import Scorer
from attnlab.models.decoding import DecoderStep, Seq2SeqOutput, check_special_ids


@dataclass
class BahdanauDecodingState:
    """The encoder outputs and source lengths (fixed) and the decoder GRU's hidden state (per step)."""

    encoder_outputs: Tensor  # (B, S, H)
    src_lens: Tensor  # (B,)
    hidden: Tensor  # (L, B, H)

    def reorder(self, batch_indices: Tensor) -> None:
        self.encoder_outputs = self.encoder_outputs.index_select(0, batch_indices)
        self.src_lens = self.src_lens.index_select(0, batch_indices)
        self.hidden = self.hidden.index_select(1, batch_indices)


class GRUEncoder(nn.Module):
    """Embedding + multi-layer GRU; padded positions are skipped by packing."""

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, *, num_layers: int, dropout: float, pad_id: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=pad_id)
        self.rnn = nn.GRU(embed_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0, batch_first=True)

    def forward(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(src), src_lens.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, hidden = self.rnn(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])
        return outputs, hidden  # (B, S, H), (L, B, H)


class BahdanauDecoder(nn.Module):
    """One step: attend with the top hidden state, then GRU over [context; embedding], then project to V."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        *,
        num_layers: int,
        dropout: float,
        scorer: Callable[[int, int], Scorer],
    ):
        super().__init__()
        self.attention = Attention(scorer(hidden_size, hidden_size), dropout=0.0)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.GRU(
            embed_size + hidden_size, hidden_size, num_layers, dropout=dropout if num_layers > 1 else 0.0, batch_first=True
        )
        self.output = nn.Linear(hidden_size, vocab_size)

    def step(self, tokens: Tensor, state: BahdanauDecodingState) -> tuple[Tensor, Tensor, Tensor]:
        """``tokens`` (B,) -> top-layer output (B, 1, H), new hidden (L, B, H), attention weights (B, 1, S).

        The vocabulary projection is left to the caller, so teacher forcing applies it once to all steps."""
        query = state.hidden[-1].unsqueeze(1)  # (B, 1, H)
        attended = self.attention(query, state.encoder_outputs, state.encoder_outputs, valid_lens=state.src_lens)
        features = torch.cat([attended.output, self.embedding(tokens).unsqueeze(1)], dim=-1)  # (B, 1, H + E)
        output, hidden = self.rnn(features, state.hidden)  # (B, 1, H), (L, B, H)
        return output, hidden, attended.weights


class BahdanauSeq2Seq(nn.Module):
    """GRU encoder-decoder with attention; d2l defaults: E = H = 256, 2 layers, dropout 0.2."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        scorer: Callable[[int, int], Scorer],
        pad_id: int,
        bos_id: int,
        eos_id: int,
        embed_size: int = 256,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.2,
    ):
        super().__init__()
        check_special_ids(tgt_vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.encoder = GRUEncoder(
            src_vocab_size, embed_size, hidden_size, num_layers=num_layers, dropout=dropout, pad_id=pad_id
        )
        self.decoder = BahdanauDecoder(
            tgt_vocab_size, embed_size, hidden_size, num_layers=num_layers, dropout=dropout, scorer=scorer
        )

    def start_decoding(self, src: Tensor, src_lens: Tensor, use_cache: bool = True) -> BahdanauDecodingState:
        """Encode once; the GRU state is the decoder's whole memory, so ``use_cache`` changes nothing."""
        encoder_outputs, hidden = self.encoder(src, src_lens)
        return BahdanauDecodingState(encoder_outputs, src_lens, hidden)

    def decode_step(self, state: BahdanauDecodingState, tokens: Tensor) -> DecoderStep:
        output, state.hidden, _ = self.decoder.step(tokens, state)
        return DecoderStep(self.decoder.output(output.squeeze(1)), state)  # logits (B, V)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, need_weights: bool = False) -> Seq2SeqOutput:
        """Teacher forcing over ``tgt_in`` (B, T); the recurrence makes this a loop over T."""
        state = self.start_decoding(src, src_lens)
        outputs, weights = [], []
        for t in range(tgt_in.shape[1]):
            output, state.hidden, step_weights = self.decoder.step(tgt_in[:, t], state)
            outputs.append(output)
            weights.append(step_weights)
        cross = [torch.cat(weights, dim=1).unsqueeze(1)] if need_weights else [None]  # (B, 1, T, S)
        logits = self.decoder.output(torch.cat(outputs, dim=1))  # one GEMM for all steps: (B, T, V)
        return Seq2SeqOutput(logits, [], [], cross)  # no self-attention; one cross-attention (B, 1, T, S)
