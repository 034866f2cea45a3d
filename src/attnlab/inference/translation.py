"""A loaded translation model (Transformer or Bahdanau GRU): translate, and every attention map of a translation.

Shape legend: B batch, S source length (tokens + <eos>), T target input length (<bos> + tokens).

Attention is read off one teacher-forced pass over ``<bos> y``, where ``y`` is the model's own translation (the
search's output) or a given target: decoder query ``t`` is the position fed ``y_t`` (``y_0 = <bos>``), which
predicts ``y_{t+1}``. Source keys are the source tokens and the ``<eos>`` the encoder reads after them.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from attnlab.inference.loaded import LoadedModel, Texts, chunks, layer_maps, paired_batch, text_batch
from attnlab.inference.restore import RestoredRun
from attnlab.inference.results import AttentionMap, AttentionResult
from attnlab.models.decoding import Search, SearchConfig
from attnlab.models.seq2seq import BahdanauSeq2Seq

# the name of a model's decoder-over-encoder attention, where it is not the Transformer's "cross"
CROSS_KINDS: dict[type, str] = {BahdanauSeq2Seq: "additive"}

Alignment = list[tuple[int, int]]  # (source token, target token) index pairs


def decoder_attention(result: AttentionResult) -> AttentionMap:
    """The decoder's attention over the encoder in a translation's result: the Transformer's cross-attention or
    Bahdanau's additive attention."""
    return result.maps["cross"] if "cross" in result.maps else result.maps["additive"]


def cross_alignment(result: AttentionResult) -> Alignment:
    """Word alignment read off the decoder-over-encoder attention (as fairseq's ``--print-alignment``): each
    target token is aligned with the source token its prediction attended to most, over the last layer's heads
    averaged. Indices are 0-based over the tokens of ``query_tokens[1:]`` and ``key_tokens[:-1]`` (no <bos>,
    <eos>); pairs sorted by source index."""
    attention = decoder_attention(result)
    weights = attention.weights[-1].mean(0)  # (T, S): row t is the step that predicts target token t
    words = weights[: len(attention.query_tokens) - 1, : len(attention.key_tokens) - 1]  # no <eos> either side
    if words.numel() == 0:
        return []
    return sorted((int(source), target) for target, source in enumerate(words.argmax(-1).tolist()))


class LoadedTranslator(LoadedModel):
    """``translate`` sentences with the checkpoint's search (or overrides of it); ``attention`` and ``alignment``
    of the model's translation or of a given target."""

    family = "translation"

    def __init__(self, run: RestoredRun, device: str | torch.device = "cpu"):
        super().__init__(run, device)
        self.search_config: SearchConfig = run.module.search_config
        self.cross_kind = CROSS_KINDS.get(type(self.net), "cross")

    @property
    def max_len(self) -> int | None:
        return self.data.preparation.max_len  # tokens + <eos>, as the training pairs were cut

    def details(self) -> dict[str, Any]:
        spec = self.data.spec()  # the checkpoint's tokenizers: nothing is read
        return {"src_vocab_size": spec.src_vocab_size, "tgt_vocab_size": spec.tgt_vocab_size,
                "decode": asdict(self.search_config), "attention": [*self.self_kinds(), self.cross_kind]}

    def self_kinds(self) -> list[str]:
        """The model's self-attention kinds (Bahdanau's GRUs have none)."""
        return [] if self.cross_kind == "additive" else ["encoder_self", "decoder_self"]

    def search(self, strategy: str | None = None, beam_size: int | None = None, max_len: int | None = None,
               length_penalty: float | None = None, use_cache: bool | None = None) -> SearchConfig:
        """The checkpoint's search options (``describe()["decode"]``) with those given replaced: strategy
        greedy|beam, beam_size, max_len (most output tokens, <eos> included), length_penalty (beam), use_cache."""
        given = {"strategy": strategy, "beam_size": beam_size, "max_steps": max_len, "length_penalty": length_penalty,
                 "use_cache": use_cache}
        return SearchConfig.from_dict(asdict(self.search_config) | {k: v for k, v in given.items() if v is not None})

    def translate(self, texts: Texts, strategy: str | None = None, beam_size: int | None = None,
                  max_len: int | None = None, *, length_penalty: float | None = None,
                  use_cache: bool | None = None) -> str | list[str]:
        """The translation of one sentence, or of each of a list, by the search :meth:`search` describes."""
        sources, single = text_batch(texts)
        search = self.search(strategy, beam_size, max_len, length_penalty, use_cache).build()
        translations: list[str] = []
        with torch.inference_mode():
            for (chunk,) in chunks(self.batch_size, sources):
                src, src_lens = self._encode(chunk)
                translations += self.data.decode_target(search(self.net, src, src_lens).tokens.cpu())
        return translations[0] if single else translations

    def attention(self, src: Texts, tgt: Texts | None = None, *,
                  strategy: str | None = None, beam_size: int | None = None, max_len: int | None = None,
                  length_penalty: float | None = None) -> AttentionResult | list[AttentionResult]:
        """Every attention map (each layer and head) of translating ``src``: into the model's own translation
        (by the search :meth:`search` describes; the result's ``output``), or teacher-forced into ``tgt``."""
        sources, single = text_batch(src, "src")
        targets = paired_batch(tgt, sources, single, "tgt")
        search = self.search(strategy, beam_size, max_len, length_penalty).build()
        results: list[AttentionResult] = []
        with torch.inference_mode():
            for chunk, chunk_targets in chunks(self.batch_size, sources, targets):
                results += self._attention(chunk, chunk_targets, search)
        return results[0] if single else results

    def alignment(self, src: Texts, tgt: Texts | None = None) -> Alignment | list[Alignment]:
        """Source -> target token alignment (:func:`cross_alignment`) of the model's translation or of ``tgt``."""
        results = self.attention(src, tgt)
        return cross_alignment(results) if isinstance(results, AttentionResult) else list(map(cross_alignment, results))

    # ---- internals ---------------------------------------------------------------------------------------------
    def _encode(self, sources: list[str]) -> tuple[Tensor, Tensor]:
        src, src_lens = self.data.encode_source(sources)  # preprocessed and truncated as the training data
        return src.to(self.device), src_lens.to(self.device)

    def _truncated(self, tokenizer, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Rows of ``texts`` cut to ``max_len - 1`` tokens (room for <eos>/<bos>), and which were cut."""
        rows = self.data.preparation.sentence_rows(tokenizer, texts)
        limit = None if self.max_len is None else self.max_len - 1
        return [row[:limit] for row in rows], [limit is not None and len(row) > limit for row in rows]

    def _attention(self, sources: list[str], targets: list[str] | None, search: Search) -> list[AttentionResult]:
        src_tok, tgt_tok, net = self.data.src_tokenizer, self.data.tgt_tokenizer, self.net
        _, src_cut = self._truncated(src_tok, sources)
        src, src_lens = self._encode(sources)
        if targets is None:  # the model's own translation
            hypotheses = search(net, src, src_lens)
            rows = [row[:length] for row, length in zip(hypotheses.tokens.tolist(), hypotheses.lengths.tolist())]
            outputs, tgt_cut = self.data.decode_target(hypotheses.tokens.cpu()), [False] * len(sources)
        else:
            rows, tgt_cut = self._truncated(tgt_tok, targets)
            outputs = targets
        tgt_lens = [len(row) + 1 for row in rows]  # <bos> y
        tgt_in = torch.full((len(rows), max(tgt_lens)), net.pad_id, dtype=torch.long)  # (B, T)
        for i, row in enumerate(rows):
            tgt_in[i, : tgt_lens[i]] = torch.tensor([net.bos_id, *row], dtype=torch.long)
        output = net(src, src_lens, tgt_in.to(self.device), need_weights=True)
        src_tokens = [[src_tok.id_to_token(t) for t in row[:n].tolist()] for row, n in zip(src, src_lens.tolist())]
        tgt_tokens = [[tgt_tok.id_to_token(t) for t in row[:n].tolist()] for row, n in zip(tgt_in, tgt_lens)]
        views = {  # kind: (weights per layer, query tokens, key tokens of each sentence)
            "encoder_self": (output.encoder_self_weights, src_tokens, src_tokens),
            "decoder_self": (output.decoder_self_weights, tgt_tokens, tgt_tokens),
            self.cross_kind: (output.cross_weights, tgt_tokens, src_tokens),
        }
        results = []
        for i in range(len(sources)):
            maps = {
                kind: AttentionMap(kind, queries[i], keys[i], layer_maps(weights, i, len(queries[i]), len(keys[i])))
                for kind, (weights, queries, keys) in views.items() if weights  # Bahdanau: no self-attention
            }
            results.append(AttentionResult(maps, outputs[i], src_cut[i] or tgt_cut[i]))
        return results
