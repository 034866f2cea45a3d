"""``attnlab-features``: contextual token vectors from a BERT run (d2l 15.8.4, "BERT features"): a pretrained
encoder or a fine-tuned one, loaded with ``attnlab.load`` (a checkpoint, or a run dir as ``attnlab-eval`` takes it).

    attnlab-features ckpt_path=outputs/bert_pretrain/<run>/checkpoints/last.ckpt text="a crane flew over the river"
    attnlab-features ckpt_path=... text="he went to the bank" text_b="he took out money" output=feats.pt

Shape legend: T tokens of the encoded pair (with [CLS] and [SEP]), D model dim.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from attnlab.cli.arguments import parse_key_values, run_main
from attnlab.inference import LoadedBert, TokenFeatures, load

PRINTED_DIMS = 6  # vector entries printed per token
USAGE = (
    "usage: attnlab-features ckpt_path=CKPT|RUN_DIR text=TEXT [text_b=TEXT] [output=FILE.pt] [device=cpu|cuda]\n"
    "  prints each token's contextual vector (first dims) and the [CLS] vector, or saves them with torch.save"
)
KEYS = ("ckpt_path", "text", "text_b", "output", "device")


def parse_arguments(argv: list[str]) -> dict[str, str]:
    """``key=value`` pairs (see ``attnlab.cli.arguments``); ``ckpt_path`` and ``text`` are required."""
    return parse_key_values(argv, KEYS, defaults={"device": "cpu"}, required=("ckpt_path", "text"))


def features(path: str | Path, text: str, text_b: str | None = None, device: str = "cpu") -> TokenFeatures:
    """The token features of a text (pair) by the BERT encoder of ``path``."""
    loaded = load(path, device)
    if not isinstance(loaded, LoadedBert):
        raise ValueError(f"{loaded.path} holds a {loaded.family} model, which has no BERT encoder")
    return loaded.features(text, text_b)


def run(argv: list[str]) -> None:
    args = parse_arguments(argv)
    result = features(args["ckpt_path"], args["text"], args.get("text_b"), args["device"])
    if result.truncated:
        print(f"note: the input was cut to the model's {len(result.tokens)} positions", file=sys.stderr)
    if "output" in args:
        path = Path(args["output"])
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {"tokens": result.tokens, "vectors": result.hidden, "cls": result.hidden[0], "pooled": result.pooled,
                 "segments": result.segments}  # plain tensors and strings: loads with weights_only=True
        torch.save(saved, path)
        print(f"saved {len(result.tokens)} token vectors of size {result.hidden.shape[1]} to {path}")
        return
    width = max(len(token) for token in result.tokens)
    for token, segment, vector in zip(result.tokens, result.segments.tolist(), result.hidden):
        shown = " ".join(f"{v:+.3f}" for v in vector[:PRINTED_DIMS].tolist())
        print(f"{token:<{width}}  seg {segment}  [{shown} ...]  |v|={vector.norm():.3f}")
    print(f"{len(result.tokens)} tokens x {result.hidden.shape[1]} dims; the [CLS] vector is the first row; "
          "output=FILE.pt saves every value")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-features", USAGE, run, argv)


if __name__ == "__main__":
    main()
