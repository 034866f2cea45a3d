"""``attnlab-translate``: translate sentences with a trained seq2seq checkpoint and the tokenizer saved in it.

    attnlab-translate ckpt_path=outputs/transformer_mt/<run>/checkpoints/last.ckpt text="he's calm ."
    attnlab-translate ckpt_path=... input=sentences.txt decode.strategy=beam decode.beam_size=5
    attnlab-translate ckpt_path=... input=run/translations/test.src ref=run/translations/test.ref

Prints one translation per input sentence, in order (``text=`` may repeat; ``input=`` is one sentence a line).
With ``ref=FILE`` (one reference a line, one per sentence) it then scores the translations as ``attnlab-train``
scores its test split (sacrebleu's BLEU, chrF and TER with their signatures) and prints that to stderr.
Arguments are ``key=value`` with the value taken literally (so apostrophes need no escaping); ``decode.*``
overrides the checkpoint's search options.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from attnlab.cli.arguments import parse_key_values, positive_int, run_main
from attnlab.inference.restore import restore_run
from attnlab.lit.scores import corpus_scores, format_scores
from attnlab.models.decoding import SearchConfig

USAGE = (
    "usage: attnlab-translate ckpt_path=PATH (text=SENTENCE ... | input=FILE) [ref=FILE] [decode.KEY=VALUE ...] "
    "[batch_size=64] [device=cpu|cuda]\n"
    f"  decode keys: {', '.join(f.name for f in fields(SearchConfig))}"
)
KEYS = ("ckpt_path", "text", "input", "ref", "batch_size", "device")
DECODE_TYPES = {f.name: f.type for f in fields(SearchConfig)}
DECODE_KEYS = tuple(f"decode.{name}" for name in DECODE_TYPES)


def _convert(key: str, value: str):
    """``decode.*`` values take the type of the SearchConfig field."""
    kind = DECODE_TYPES[key]
    if kind in ("bool", bool):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"decode.{key} must be true or false, got {value!r}")
        return value.lower() == "true"
    converter = {"int": int, "float": float}.get(str(kind), str)
    try:
        return converter(value)
    except ValueError as error:
        raise ValueError(f"decode.{key}={value!r} is not a valid {converter.__name__}") from error


def read_lines(key: str, path: str) -> list[str]:
    """The lines of a UTF-8 text file given as ``key=path``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{key} file not found: {path}")
    return [line.rstrip("\r\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]


def parse_arguments(argv: list[str]) -> tuple[dict[str, Any], list[str], dict[str, object]]:
    """Split ``key=value`` arguments (see ``attnlab.cli.arguments``) into options, the sentences (``text=``,
    then the lines of ``input=``) and ``decode.*`` overrides; ``options["references"]`` holds the lines of
    ``ref=``, one per sentence."""
    options = parse_key_values(
        argv, [*KEYS, *DECODE_KEYS], defaults={"batch_size": "64", "device": "cpu"}, required=("ckpt_path",),
        repeatable=("text",),
    )
    decode = {key: _convert(key, options.pop(f"decode.{key}")) for key in DECODE_TYPES if f"decode.{key}" in options}
    texts = options.pop("text")
    if "input" in options:
        texts += read_lines("input", options["input"])
    if not texts:
        raise ValueError("nothing to translate: give text=SENTENCE or input=FILE")
    if "ref" in options:
        options["references"] = read_lines("ref", options["ref"])
        if len(options["references"]) != len(texts):
            raise ValueError(f"ref={options['ref']} holds {len(options['references'])} lines for {len(texts)} sentences")
    options["batch_size"] = positive_int("batch_size", options["batch_size"])
    return options, texts, decode


@torch.no_grad()
def translate(ckpt_path: str | Path, texts: list[str], decode: dict | None = None, batch_size: int = 64,
              device: str = "cpu") -> list[str]:
    """Translations of ``texts`` by the checkpoint's model, searched with its decode options (+ overrides)."""
    run = restore_run(ckpt_path)
    if not hasattr(run.datamodule, "encode_source") or not hasattr(run.module, "search_config"):
        raise ValueError(f"{ckpt_path} is not a translation checkpoint (its model is {type(run.module).__name__})")
    search = SearchConfig.from_dict({**asdict(run.module.search_config), **(decode or {})}).build()
    net = run.module.net.to(device)
    translations: list[str] = []
    for start in range(0, len(texts), batch_size):
        src, src_lens = run.datamodule.encode_source(texts[start : start + batch_size])
        hypotheses = search(net, src.to(device), src_lens.to(device))
        translations += run.datamodule.decode_target(hypotheses.tokens.cpu())
    return translations


def run(argv: list[str]) -> None:
    options, texts, decode = parse_arguments(argv)
    translations = translate(options["ckpt_path"], texts, decode, options["batch_size"], options["device"])
    for translation in translations:
        print(translation)
    if "references" in options:
        print(format_scores(corpus_scores(translations, options["references"])), file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-translate", USAGE, run, argv)


if __name__ == "__main__":
    main()
