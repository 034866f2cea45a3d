"""Case 3: greedy and beam-4 translation of fra-eng test sentences in sentences/s, with the key/value cache
against full recomputation of the prefix at every step.

The model is randomly initialised (no training in a benchmark) with its ``<eos>`` logit suppressed, so every
output runs the full ``MAX_STEPS`` tokens: the 30-token outputs the goal is stated for. Cached and
recomputed searches must give identical outputs; the case checks it on the first batch.
"""
from __future__ import annotations

import torch

from bench.cases.common import Context, build_net, compose_train
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure

MAX_STEPS = 30
SUPPRESSED = -1e4  # <eos> bias: never the best token, so no hypothesis ends early


def sizes(ctx: Context) -> list[str]:
    return ["transformer"] if ctx.quick else ["transformer", "transformer_small"]


def run(ctx: Context) -> CaseResult:
    from attnlab.data.pairs import collate_pairs
    from attnlab.models.decoding import beam_search, greedy_decode

    result = CaseResult("decoding", "greedy and beam-4 decoding, KV cache vs recomputation")
    data = ctx.fra_eng
    ids = data.spec().as_dict()
    sentences, batch_rows = (16, 8) if ctx.quick else (1000, 125)
    pairs = data.datasets["test"]
    sources = [pairs.src[i] for i in range(min(sentences, len(pairs)))]

    batches = []
    for start in range(0, len(sources), batch_rows):
        chunk = [(start + i, source, source[:0]) for i, source in enumerate(sources[start:start + batch_rows])]
        batch = collate_pairs(chunk, ids["pad_id"], ids["bos_id"], ids["eos_id"])
        batches.append((batch.src, batch.src_lens))
    result.notes.append(
        f"{len(sources)} fra-eng test sentences in batches of {batch_rows}; random-init model with the <eos> logit "
        f"suppressed, so every output is {MAX_STEPS} tokens; beam: 4 beams, length penalty 0.6; peak MiB: one batch"
    )
    for size in sizes(ctx):
        cfg = compose_train(ctx, "experiment=transformer_mt", f"model={size}")
        torch.manual_seed(ctx.seed)
        net = build_net(cfg, **ids).eval()
        with torch.no_grad():
            net.output_proj.bias[ids["eos_id"]] = SUPPRESSED
        searches = {
            "greedy": lambda src, lens, cache: greedy_decode(net, src, lens, max_steps=MAX_STEPS, use_cache=cache),
            "beam-4": lambda src, lens, cache: beam_search(net, src, lens, beam_size=4, length_penalty=0.6,
                                                          max_steps=MAX_STEPS, use_cache=cache),
        }
        for strategy, search in searches.items():
            first_src, first_lens = batches[0]
            cached, recomputed = search(first_src, first_lens, True), search(first_src, first_lens, False)
            same = torch.equal(cached.tokens, recomputed.tokens)
            result.notes.append(f"{size} {strategy}: cached == recomputed outputs on the first batch: {same}; "
                                f"mean output length {cached.lengths.float().mean():.1f}")

            def decode_all(cache: bool, search=search) -> float:
                for src, lens in batches:
                    search(src, lens, cache)
                return len(sources)

            contenders = [
                Contender("attnlab, KV cache", lambda: decode_all(True),
                          memory_step=lambda: search(first_src, first_lens, True)),
                Contender("attnlab, recomputation", lambda: decode_all(False),
                          memory_step=lambda: search(first_src, first_lens, False)),
            ]
            # the equality check above was the warm-up; a sample decodes every sentence (minutes on a busy CPU)
            measured = measure(contenders, 0, min(ctx.repeats, 2))
            goals = [Goal(">= 3x recomputation", ">=", 3.0, "attnlab, recomputation")] if strategy == "beam-4" else []
            result.rows.append(Row(
                result.name, f"{size}, {strategy}, {MAX_STEPS}-token outputs", "sentences/s",
                Figure.rate(measured["attnlab, KV cache"]), [Figure.rate(measured["attnlab, recomputation"])], goals,
            ))
    return result
