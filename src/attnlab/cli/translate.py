"""``attnlab-translate``: translate sentences with a trained seq2seq run (``attnlab.load``: a checkpoint, or a run
dir as ``attnlab-eval`` takes it) and the tokenizer saved in it.

    attnlab-translate ckpt_path=outputs/transformer_mt/<run> text="he's calm ." text="i'm home ."
    attnlab-translate ckpt_path=... input=sentences.txt decode.strategy=beam decode.beam_size=5
    attnlab-translate ckpt_path=... input=run/translations/test.src ref=run/translations/test.ref
    attnlab-translate ckpt_path=... text="he's calm ." attention=maps/

Prints one translation per input sentence, in order (``text=`` may repeat; ``input=`` is one sentence a line).
With ``ref=FILE`` (one reference a line, one per sentence) it then scores the translations as ``attnlab-train``
scores its test split (sacrebleu's BLEU, chrF and TER with their signatures) and prints that to stderr. With
``attention=DIR`` it writes every sentence's attention maps there as heatmap grids (``<n>_<kind>.png``, a row per
layer, a column per head) and the token alignment read off the cross-attention as fairseq prints it
(``alignment.txt``: ``S-n`` source tokens, ``H-n`` translation tokens, ``A-n`` source-target index pairs).
Arguments are ``key=value`` with the value taken literally (so apostrophes need no escaping); ``decode.*``
overrides the checkpoint's search options.
"""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from attnlab.cli.arguments import parse_key_values, positive_int, run_main
from attnlab.inference import AttentionResult, LoadedTranslator, cross_alignment, decoder_attention, load
from attnlab.lit.scores import corpus_scores, format_scores
from attnlab.models.decoding import SearchConfig

USAGE = (
    "usage: attnlab-translate ckpt_path=CKPT|RUN_DIR (text=SENTENCE ... | input=FILE) [ref=FILE] [attention=DIR] "
    "[decode.KEY=VALUE ...] [batch_size=64] [device=cpu|cuda]\n"
    f"  decode keys: {', '.join(f.name for f in fields(SearchConfig))}"
)
KEYS = ("ckpt_path", "text", "input", "ref", "attention", "batch_size", "device")
ALIGNMENT_FILE = "alignment.txt"
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


def load_translator(path: str | Path, device: str) -> LoadedTranslator:
    loaded = load(path, device)
    if not isinstance(loaded, LoadedTranslator):
        raise ValueError(f"{loaded.path} is not a translation checkpoint: it holds a {loaded.family} model")
    return loaded


def write_attention(results: list[AttentionResult], directory: str | Path) -> Path:
    """Every sentence's attention grids as ``<n>_<kind>.png`` and the alignments as ``alignment.txt``."""
    from matplotlib import pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, result in enumerate(results):
        for kind in result.maps:
            figure = result.plot(kind)
            figure.savefig(directory / f"{n}_{kind}.png", dpi=110)
            plt.close(figure)
        cross = decoder_attention(result)
        pairs = " ".join(f"{source}-{target}" for source, target in cross_alignment(result))
        lines += [f"S-{n}\t{' '.join(cross.key_tokens[:-1])}", f"H-{n}\t{' '.join(cross.query_tokens[1:])}",
                  f"A-{n}\t{pairs}"]
    path = directory / ALIGNMENT_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(argv: list[str]) -> None:
    options, texts, decode = parse_arguments(argv)
    translator = load_translator(options["ckpt_path"], options["device"])
    translator.batch_size = options["batch_size"]
    search = {"strategy": decode.get("strategy"), "beam_size": decode.get("beam_size"),
              "max_len": decode.get("max_steps"), "length_penalty": decode.get("length_penalty")}
    if "attention" in options:  # the maps of the translations themselves
        results = translator.attention(texts, **search)
        translations = [result.output for result in results]
        path = write_attention(results, options["attention"])
        print(f"attention maps and alignments of {len(results)} sentences written to {path.parent}", file=sys.stderr)
    else:
        translations = translator.translate(texts, **search, use_cache=decode.get("use_cache"))
    for translation in translations:
        print(translation)
    if "references" in options:
        print(format_scores(corpus_scores(translations, options["references"])), file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-translate", USAGE, run, argv)


if __name__ == "__main__":
    main()
