"""Greedy and beam search against a scripted model whose next-token distribution is a fixed random table,
so the best hypothesis can be found by brute force."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from attnlab.models.decoding import (
    DecoderStep,
    SearchConfig,
    beam_search,
    gnmt_length_penalty,
    greedy_decode,
)

PAD, BOS, EOS = 0, 1, 2


@dataclass
class ScriptedState:
    source: Tensor  # (B,) which table row each hypothesis reads
    step: int

    def reorder(self, batch_indices: Tensor) -> None:
        self.source = self.source.index_select(0, batch_indices)


class ScriptedNet:
    """Logits depend on (source sentence, step, previous token) through a seeded random table."""

    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def __init__(self, num_sources: int, vocab: int, max_steps: int, seed: int = 0, eos_bias: float = 0.0):
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.randn(num_sources, max_steps, vocab, vocab, generator=generator) * 2
        self.table[..., EOS] += eos_bias
        self.fed: list[int] = []  # rows fed per step: shows finished sentences leave the batch

    def start_decoding(self, src: Tensor, src_lens: Tensor, use_cache: bool = True) -> ScriptedState:
        return ScriptedState(src[:, 0].clone(), 0)

    def decode_step(self, state: ScriptedState, tokens: Tensor) -> DecoderStep:
        self.fed.append(tokens.shape[0])
        logits = self.table[state.source, state.step, tokens]  # (B, V)
        state.step += 1
        return DecoderStep(logits, state)

    def log_probs(self, source: int, step: int, previous: int) -> Tensor:
        logits = self.table[source, step, previous].clone()
        logits[[PAD, BOS]] = float("-inf")
        return torch.log_softmax(logits, -1)


def sources(num: int) -> tuple[Tensor, Tensor]:
    return torch.arange(num).unsqueeze(1), torch.ones(num, dtype=torch.long)


def brute_force(net: ScriptedNet, source: int, vocab: int, max_steps: int, alpha: float) -> tuple[list[int], float]:
    """Best ``log P / lp`` over every sequence of ordinary tokens, ended by <eos> or by max_steps."""
    best, best_score = None, float("-inf")
    words = range(EOS + 1, vocab)
    for length in range(max_steps + 1):
        for sequence in itertools.product(words, repeat=length):
            total, previous = 0.0, BOS
            for step, token in enumerate(sequence):
                total += float(net.log_probs(source, step, previous)[token])
                previous = token
            if length < max_steps:
                total += float(net.log_probs(source, length, previous)[EOS])
                score = total / gnmt_length_penalty(length + 1, alpha)
            else:
                score = total / gnmt_length_penalty(length, alpha)
            if score > best_score:
                best, best_score = list(sequence), score
    return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_wide_beam_finds_the_brute_force_optimum(alpha):
    vocab, max_steps, num = 5, 3, 4  # 3 ordinary-or-eos choices per step: at most 15 hypotheses, beam 16 keeps all
    net = ScriptedNet(num, vocab, max_steps, seed=1)
    result = beam_search(net, *sources(num), beam_size=16, length_penalty=alpha, max_steps=max_steps)
    for row in range(num):
        tokens, score = brute_force(net, row, vocab, max_steps, alpha)
        assert result.tokens[row, : result.lengths[row]].tolist() == tokens
        assert result.tokens[row, result.lengths[row] :].eq(PAD).all()
        assert result.scores[row].item() == pytest.approx(score, rel=1e-5)


def test_greedy_takes_the_most_likely_token_each_step():
    vocab, max_steps, num = 9, 6, 5
    net = ScriptedNet(num, vocab, max_steps, seed=2, eos_bias=1.0)
    result = greedy_decode(net, *sources(num), max_steps=max_steps)
    for row in range(num):
        previous, expected, total = BOS, [], 0.0
        for step in range(max_steps):
            log_probs = net.log_probs(row, step, previous)
            previous = int(log_probs.argmax())
            total += float(log_probs[previous])
            if previous == EOS:
                break
            expected.append(previous)
        assert result.tokens[row, : result.lengths[row]].tolist() == expected
        assert result.tokens[row, result.lengths[row] :].eq(PAD).all()
        assert result.scores[row].item() == pytest.approx(total, rel=1e-5)
    assert EOS not in result.tokens and BOS not in result.tokens


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_of_one_is_greedy(alpha):
    net = ScriptedNet(8, 9, 7, seed=3, eos_bias=1.0)
    greedy = greedy_decode(net, *sources(8), max_steps=7)
    beam = beam_search(net, *sources(8), beam_size=1, length_penalty=alpha, max_steps=7)
    assert torch.equal(beam.tokens, greedy.tokens) and torch.equal(beam.lengths, greedy.lengths)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_each_sentence_decodes_as_if_alone(search):
    """Shrinking the batch as sentences finish, and reordering beams, never mixes rows up."""
    num, vocab, max_steps = 6, 10, 8
    net = ScriptedNet(num, vocab, max_steps, seed=4, eos_bias=1.5)
    decode = SearchConfig(strategy=search, beam_size=3, max_steps=max_steps).build()
    together = decode(net, *sources(num))
    for row in range(num):
        alone = decode(net, torch.tensor([[row]]), torch.ones(1, dtype=torch.long))
        assert together.tokens[row, : together.lengths[row]].tolist() == alone.tokens[0, : alone.lengths[0]].tolist()
        torch.testing.assert_close(together.scores[row], alone.scores[0])


def test_finished_sentences_leave_the_batch_and_unfinished_ones_stop_at_max_steps():
    net = ScriptedNet(6, 10, 8, seed=5, eos_bias=1.5)
    result = greedy_decode(net, *sources(6), max_steps=8)
    assert net.fed[0] == 6 and net.fed == sorted(net.fed, reverse=True) and net.fed[-1] < 6
    never_ends = ScriptedNet(3, 6, 4, seed=6, eos_bias=-100.0)
    for decoded in (greedy_decode(never_ends, *sources(3), max_steps=4),
                    beam_search(never_ends, *sources(3), beam_size=2, max_steps=4)):
        assert decoded.lengths.tolist() == [4, 4, 4] and decoded.tokens.shape == (3, 4)
        assert decoded.tokens.gt(EOS).all()
    assert result.tokens.shape[1] == int(result.lengths.max())


def test_length_penalty_favours_longer_hypotheses():
    net = ScriptedNet(10, 8, 10, seed=7, eos_bias=0.5)
    raw = beam_search(net, *sources(10), beam_size=4, length_penalty=0.0, max_steps=10)
    penalised = beam_search(net, *sources(10), beam_size=4, length_penalty=2.0, max_steps=10)
    assert penalised.lengths.sum() > raw.lengths.sum()
    assert gnmt_length_penalty(1, 0.6) == pytest.approx(1.0) and gnmt_length_penalty(7, 1.0) == pytest.approx(2.0)


def test_search_options_are_validated():
    with pytest.raises(ValueError, match="strategy='sampling' is not one of"):
        SearchConfig(strategy="sampling")
    with pytest.raises(ValueError, match="unknown decode options \\['beam'\\]"):
        SearchConfig.from_dict({"beam": 4})
    with pytest.raises(ValueError, match="beam_size must be a positive int, got 0"):
        SearchConfig.from_dict({"strategy": "beam", "beam_size": 0})
    with pytest.raises(ValueError, match="length_penalty must be >= 0"):
        beam_search(ScriptedNet(1, 5, 2), *sources(1), length_penalty=-1.0)
    with pytest.raises(ValueError, match="max_steps must be a positive int, got 0"):
        greedy_decode(ScriptedNet(1, 5, 2), *sources(1), max_steps=0)
