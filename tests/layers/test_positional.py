import math

import pytest
import torch

from attnlab.layers.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    PositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
)

ENCODINGS = [SinusoidalPositionalEncoding, LearnedPositionalEncoding, RotaryPositionalEncoding, NoPositionalEncoding]


def test_sinusoidal_values_match_paper_formula():
    pe = SinusoidalPositionalEncoding(d_model=8, max_len=16)
    out = pe(torch.zeros(1, 10, 8))
    pos, i = 7, 2
    torch.testing.assert_close(out[0, pos, 2 * i], torch.tensor(math.sin(pos / 10000 ** (2 * i / 8))))
    torch.testing.assert_close(out[0, pos, 2 * i + 1], torch.tensor(math.cos(pos / 10000 ** (2 * i / 8))))
    # an offset continues the positions (incremental decoding)
    torch.testing.assert_close(pe(torch.zeros(1, 1, 8), offset=7)[0, 0], out[0, 7])
    # longer than the table: extends itself
    assert pe(torch.zeros(1, 40, 8)).shape == (1, 40, 8)


def test_learned_encoding_changes_output_and_rejects_overlong_input():
    pe = LearnedPositionalEncoding(d_model=8, max_len=6)
    x = torch.zeros(2, 6, 8)
    assert not torch.equal(pe(x), x)
    with pytest.raises(ValueError, match="max_len=6"):
        pe(torch.zeros(1, 7, 8))
    with pytest.raises(ValueError, match="reaches position 7"):
        pe(torch.zeros(1, 2, 8), offset=5)


def test_rotary_preserves_norm_and_depends_on_relative_position_only():
    rope = RotaryPositionalEncoding(d_model=16, num_heads=2, max_len=8)
    q, k = torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8)
    torch.testing.assert_close(rope.rotate(q, 3).norm(dim=-1), q.norm(dim=-1))
    score_a = (rope.rotate(q, 5) * rope.rotate(k, 2)).sum(-1)
    score_b = (rope.rotate(q, 13) * rope.rotate(k, 10)).sum(-1)  # same distance, past max_len
    torch.testing.assert_close(score_a, score_b, atol=1e-4, rtol=1e-4)
    assert torch.equal(rope(torch.ones(1, 3, 16)), torch.ones(1, 3, 16))  # nothing added to embeddings


def test_none_is_identity():
    pe = NoPositionalEncoding(8)
    x = torch.randn(1, 3, 8)
    assert torch.equal(pe(x), x) and torch.equal(pe.rotate(x), x)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_shares_the_base_and_is_no_kind_of_none(encoding):
    pe = encoding(16, 2, 8)
    assert isinstance(pe, PositionalEncoding)
    assert encoding is NoPositionalEncoding or not isinstance(pe, NoPositionalEncoding)
    assert pe(torch.zeros(1, 3, 16)).shape == (1, 3, 16) and pe.rotate(torch.zeros(1, 2, 3, 8)).shape == (1, 2, 3, 8)
