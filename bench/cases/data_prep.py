"""Case 4: data preparation in seconds, cold (no cache: read, train the tokenizer, encode, write the cache)
and cached (a new data module over the written cache), as ``experiment=bert_pretrain`` and
``experiment=transformer_mt`` configure them.

WikiText-2: ``setup`` then one epoch of pretraining examples (sentence pairs, [CLS]/[SEP] assembly, masks).
fra-eng: ``setup`` (split, tokenizers, encoding), and one epoch of length-bucketed training batches.
The corpus files themselves sit in the OS page cache after the first read, in both settings.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from omegaconf import open_dict

from bench.cases.common import Context, compose_train
from bench.harness import CaseResult, Contender, Figure, Goal, Row, measure


def _datamodule(cfg, cache_dir: Path):
    from hydra.utils import instantiate

    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        data_cfg.cache_dir = str(cache_dir)
    return instantiate(data_cfg)


def _cold_and_cached(ctx: Context, cfg, prepare) -> tuple[Contender, Contender]:
    """Contenders timing ``prepare(datamodule)`` from an empty cache and from a filled one."""
    scratch = ctx.work_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    filled = Path(tempfile.mkdtemp(dir=scratch))
    prepare(_datamodule(cfg, filled))

    def cold() -> float:
        empty = Path(tempfile.mkdtemp(dir=scratch))
        try:
            prepare(_datamodule(cfg, empty))
        finally:
            shutil.rmtree(empty)
        return 1

    def cached() -> float:
        prepare(_datamodule(cfg, filled))
        return 1

    return Contender("cold", cold, probe_memory=False), Contender("cached", cached, probe_memory=False)


def run(ctx: Context) -> CaseResult:
    result = CaseResult("data_prep", "data preparation, cold and cached")
    repeats = ctx.heavy_repeats()
    for split in ("train", "valid", "test"):
        ctx.require(f"wikitext-2/wiki.{split}.tokens")
    ctx.require("fra-eng/fra.txt")

    wiki_cfg = compose_train(ctx, "experiment=bert_pretrain")
    counts = {}

    def wiki_epoch(datamodule) -> None:
        datamodule.setup("fit")
        counts["wikitext"] = len(datamodule.examples("train", epoch=0).nsp_labels)

    measured = measure(list(_cold_and_cached(ctx, wiki_cfg, wiki_epoch)), 0, repeats)
    for setting, goal in (("cold", Goal("< 10 s", "<=", 10.0)), ("cached", Goal("< 1 s", "<=", 1.0))):
        result.rows.append(Row(result.name, f"WikiText-2 pretraining examples, one epoch, {setting}", "seconds",
                               Figure.seconds(measured[setting]), [], [goal]))

    mt_cfg = compose_train(ctx, "experiment=transformer_mt")

    def mt_setup(datamodule) -> None:
        datamodule.setup("fit")
        counts["fra-eng"] = len(datamodule.datasets["train"])

    measured = measure(list(_cold_and_cached(ctx, mt_cfg, mt_setup)), 0, repeats)
    for setting in ("cold", "cached"):
        result.rows.append(Row(result.name, f"fra-eng split + tokenizers + encoding, {setting}", "seconds",
                               Figure.seconds(measured[setting])))

    loaded = _datamodule(mt_cfg, ctx.work_dir / "cache")
    loaded.setup("fit")

    def one_epoch() -> float:
        return sum(len(batch.src_lens) for batch in loaded.train_dataloader())

    measured = measure([Contender("attnlab", one_epoch, probe_memory=False)], 0, repeats)
    result.rows.append(Row(result.name, f"fra-eng training batches, one epoch (bucketing + collation), batch "
                           f"{mt_cfg.data.batch_size}", "seconds", Figure.seconds(measured["attnlab"])))
    result.notes.append(f"WikiText-2: {counts['wikitext']:,} training pairs per epoch; fra-eng: {counts['fra-eng']:,} "
                        f"training pairs; {repeats} interleaved rounds of cold and cached; the first (filling) run "
                        f"is the warm-up")
    return result
