"""Case 2: a BERT pretraining step (masked LM + next sentence; forward, loss, backward, clipping, AdamW) in
non-padding input tokens/s, on WikiText-2 pretraining batches and on fixed-length synthetic ones.

References: ``transformers.BertForPreTraining`` of the same sizes in its standard usage (masked-LM logits at
every position, the loss from position labels) and with the masked-LM head applied to the gathered
positions only, and the explicit d2l-style BERT (gathered head, as d2l's ``MaskLM``). Every contender gets the
same batches (padded to ``max_len`` by attnlab's data module) and the optimizer of ``experiment=bert_pretrain``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.cases.common import Context, build_net, compose_train, cycle, num_parameters, training_step
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure
from bench.reference.explicit_bert import ExplicitBertForPretraining
from bench.reference.hf_bert import IGNORE, bert_for_pretraining, gathered_logits, standard_loss

HF_STANDARD = "BertForPreTraining (standard)"
HF_GATHERED = "BertForPreTraining (gathered head)"
EXPLICIT = "explicit (d2l-style)"
DIMS = ("d_model", "num_heads", "num_layers", "dropout", "activation")
ROWS = 128  # sequences per batch (d2l trains with 512; 128 x 64 tokens already keeps the GEMMs busy)


def sizes(ctx: Context) -> list[str]:
    return ["bert"] if ctx.quick else ["bert", "bert_small"]


def prepared(batch) -> dict:
    """Everything a contender reads, built outside the timed step (as a data loader would)."""
    length = batch.tokens.shape[1]
    attention_mask = (torch.arange(length) < batch.valid_lens[:, None]).long()  # (B, T) 1 = real token
    labels = batch.mlm_labels.masked_fill(~batch.mlm_mask, IGNORE)  # (B, P)
    rows, slots = batch.mlm_mask.nonzero(as_tuple=True)
    full_labels = torch.full_like(batch.tokens, IGNORE)  # (B, T): the label at each predicted position
    full_labels[rows, batch.mlm_positions[rows, slots]] = batch.mlm_labels[rows, slots]
    return {"batch": batch, "attention_mask": attention_mask, "labels": labels, "full_labels": full_labels,
            "hf_next": 1 - batch.nsp_labels, "useful": int(batch.valid_lens.sum())}


def synthetic_batches(count: int, rows: int, length: int, slots: int, vocab: int, specials: int, seed: int):
    """Full-length rows (valid length = max_len), ``slots`` predicted positions each, no padding slots."""
    from attnlab.data.pretraining_examples import PretrainingBatch

    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        tokens = torch.randint(specials, vocab, (rows, length), generator=generator)
        segments = (torch.arange(length) >= length // 2).long().expand(rows, length).contiguous()
        positions = torch.rand(rows, length - 1, generator=generator).argsort(1)[:, :slots].sort(1).values + 1
        labels = torch.randint(specials, vocab, (rows, slots), generator=generator)
        nsp = torch.randint(0, 2, (rows,), generator=generator)
        batches.append(PretrainingBatch(tokens, segments, torch.full((rows,), length), positions, labels,
                                        torch.ones(rows, slots, dtype=torch.bool), nsp))
    return batches


def slot_loss(mlm_logits, nsp_logits, item) -> torch.Tensor:
    """The references' pretraining loss: mean cross-entropy over the real prediction slots, plus NSP (attnlab's
    ``pretraining_losses`` on logits at every slot, padding ones included)."""
    mlm = F.cross_entropy(mlm_logits.flatten(0, 1).float(), item["labels"].flatten(), ignore_index=IGNORE)
    return mlm + F.cross_entropy(nsp_logits.float(), item["batch"].nsp_labels)


def contestants(ctx: Context, size: str, ids: dict):
    """attnlab's BERT of ``model=<size>``, BertForPreTraining (two usages) and the explicit BERT at its sizes:
    ``{name: (model, loss(item))}``, one AdamW per model (keyed by ``id``), and the sizes."""
    from attnlab.lit.pretraining import pretraining_losses
    from attnlab.training.optim import weight_decay_groups

    cfg = compose_train(ctx, "experiment=bert_pretrain", f"model={size}")
    torch.manual_seed(ctx.seed)
    net = build_net(cfg, **ids)
    dims = {key: cfg.model.net.bert[key] for key in DIMS} | {"d_ff": cfg.model.net.bert.block.d_ff}
    explicit = ExplicitBertForPretraining(ids["vocab_size"], ids["pad_id"], ids["max_len"], **dims)
    hf = bert_for_pretraining(ids["vocab_size"], ids["pad_id"], ids["max_len"], **dims)

    def attnlab_loss(item):
        b = item["batch"]
        return pretraining_losses(net(b.tokens, b.segments, b.valid_lens, b.mlm_positions, b.mlm_mask), b).total

    def hf_standard(item):
        b = item["batch"]
        return standard_loss(hf, b.tokens, b.segments, item["attention_mask"], item["full_labels"], item["hf_next"])

    def hf_gathered(item):
        b = item["batch"]
        return slot_loss(*gathered_logits(hf, b.tokens, b.segments, item["attention_mask"], b.mlm_positions), item)

    def explicit_loss(item):
        b = item["batch"]
        out = explicit(b.tokens, b.segments, b.valid_lens, b.mlm_positions)
        return slot_loss(out.mlm_logits, out.nsp_logits, item)

    runs = {"attnlab": (net, attnlab_loss), HF_STANDARD: (hf, hf_standard), HF_GATHERED: (hf, hf_gathered),
            EXPLICIT: (explicit, explicit_loss)}
    options = cfg.model.optimizer
    optimizers = {  # one per model (HF's two usages share one)
        id(model): torch.optim.AdamW(weight_decay_groups(model, cfg.model.weight_decay), lr=options.lr,
                                     betas=tuple(options.betas), eps=options.eps)
        for model, _ in runs.values()
    }
    return runs, optimizers, dims


def run(ctx: Context) -> CaseResult:
    result = CaseResult("bert_train", "BERT pretraining step (MLM + NSP)")
    data = ctx.wikitext
    ids = data.spec().as_dict()
    num_batches, rows = (2, 16) if ctx.quick else (6, ROWS)
    epoch = data.examples("train", epoch=0)
    real = [type(epoch)(*(field[i * rows:(i + 1) * rows] for field in epoch)) for i in range(num_batches)]
    max_len, slots = real[0].tokens.shape[1], real[0].mlm_positions.shape[1]
    synthetic = synthetic_batches(num_batches, rows, max_len, slots, ids["vocab_size"], 5, ctx.seed)
    useful = sum(int(b.valid_lens.sum()) for b in real)
    result.notes.append(
        f"WikiText-2 batches of {rows} pairs padded to max_len {max_len}: {useful / (rows * max_len * num_batches):.0%} "
        f"of the positions are real tokens (attnlab's data module pads every pair to max_len, as the references); "
        f"{slots} prediction slots per pair; vocab {ids['vocab_size']}; one step per timed sample"
    )
    repeats = ctx.heavy_repeats()
    for size in sizes(ctx):
        runs, optimizers, dims = contestants(ctx, size, ids)
        models = {id(model): model for model, _ in runs.values()}
        result.notes.append(f"{size}: parameters " + ", ".join(
            f"{name} {num_parameters(model):,}" for name, (model, _) in runs.items() if name != HF_GATHERED))
        label = f"{size} ({dims['d_model']}d, {dims['num_layers']} layers, {dims['num_heads']} heads, FFN {dims['d_ff']})"
        for setting, batches in ((f"{label}, WikiText-2 {rows}x{max_len}", real),
                                 (f"{label}, synthetic {rows}x{max_len} (no padding)", synthetic)):
            items = [prepared(b) for b in batches]
            contenders = []
            for model in models.values():
                model.train()
            for name, (model, loss_fn) in runs.items():
                optimizer = optimizers[id(model)]
                step = training_step(model, loss_fn, optimizer, cycle(items), lambda item: item["useful"], 1)
                contenders.append(Contender(name, step))
            measured = measure(contenders, ctx.warmup, repeats)
            goals = []
            if "WikiText" in setting:
                goals = [Goal(">= 4x standard", ">=", 4.0, HF_STANDARD), Goal(">= 1.0x gathered", ">=", 1.0, HF_GATHERED),
                         Goal(">= 2x explicit", ">=", 2.0, EXPLICIT)]
            result.rows.append(Row(result.name, setting, "non-padding input tokens/s", Figure.rate(measured["attnlab"]),
                                   [Figure.rate(measured[name]) for name in (HF_STANDARD, HF_GATHERED, EXPLICIT)], goals))
    return result
