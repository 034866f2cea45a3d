"""``attnlab-translate``: translate sentences with a trained seq2seq checkpoint and the tokenizer saved in it.

    attnlab-translate ckpt_path=outputs/transformer_mt/<run>/checkpoints/last.ckpt text="he's calm ."
    attnlab-translate ckpt_path=... input=sentences.txt decode.strategy=beam decode.beam_size=5

Prints one translation per input sentence, in order (``text=`` may repeat; ``input=`` is one sentence a line).
Arguments are ``key=value`` with the value taken literally (so apostrophes need no escaping); ``decode.*``
overrides the checkpoint's search options.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, fields
from pathlib import Path

import torch

from attnlab.cli.restore import restore_run
from attnlab.models.decoding import SearchConfig

USAGE = (
    "usage: attnlab-translate ckpt_path=PATH (text=SENTENCE ... | input=FILE) [decode.KEY=VALUE ...] "
    "[batch_size=64] [device=cpu|cuda]\n"
    f"  decode keys: {', '.join(f.name for f in fields(SearchConfig))}"
)
KEYS = ("ckpt_path", "text", "input", "batch_size", "device")
DECODE_TYPES = {f.name: f.type for f in fields(SearchConfig)}


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


def parse_arguments(argv: list[str]) -> tuple[dict[str, str], list[str], dict[str, object]]:
    """Split ``key=value`` arguments into options, the ``text=`` sentences and ``decode.*`` overrides."""
    options: dict[str, str] = {"batch_size": "64", "device": "cpu"}
    texts: list[str] = []
    decode: dict[str, object] = {}
    for argument in argv:
        key, sep, value = argument.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]  # Hydra-style quoting: text="a, b"
        if sep and key == "text":
            texts.append(value)
        elif sep and key.startswith("decode.") and key[len("decode."):] in DECODE_TYPES:
            decode[key[len("decode."):]] = _convert(key[len("decode."):], value)
        elif sep and key in KEYS:
            options[key] = value
        else:
            allowed = ", ".join([*KEYS, *(f"decode.{name}" for name in DECODE_TYPES)])
            raise ValueError(f"unexpected argument {argument!r}; allowed keys: {allowed}")
    if "ckpt_path" not in options:
        raise ValueError("missing ckpt_path")
    if "input" in options:
        path = Path(options["input"])
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        texts += [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines()]
    if not texts:
        raise ValueError("nothing to translate: give text=SENTENCE or input=FILE")
    if not options["batch_size"].isdigit() or int(options["batch_size"]) < 1:
        raise ValueError(f"batch_size must be a positive int, got {options['batch_size']!r}")
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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return
    try:
        options, texts, decode = parse_arguments(argv)
        translations = translate(options["ckpt_path"], texts, decode, int(options["batch_size"]), options["device"])
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"attnlab-translate: {error}\n{USAGE}") from error
    for translation in translations:
        print(translation)


if __name__ == "__main__":
    main()
