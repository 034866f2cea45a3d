"""``attnlab-features``: contextual token vectors from a pretrained BERT checkpoint (d2l 15.8.4, "BERT features").

    attnlab-features ckpt_path=outputs/bert_pretrain/<run>/checkpoints/last.ckpt text="a crane flew over the river"
    attnlab-features ckpt_path=... text="he went to the bank" text_b="he took out money" output=feats.pt

Shape legend: T tokens of the encoded pair (with [CLS] and [SEP]), D model dim.

The checkpoint carries everything needed: the resolved run config (which rebuilds the net), the weights and the
datamodule's tokenizer (``attnlab.inference.restore``).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from attnlab.cli.arguments import parse_key_values, run_main
from attnlab.inference.restore import restore_run
from attnlab.data.tokenizers import TextTokenizer
from attnlab.models.bert import BertModel

PRINTED_DIMS = 6  # vector entries printed per token


class TokenFeatures(NamedTuple):
    tokens: list[str]  # T tokens, [CLS] A [SEP] (B [SEP])
    vectors: Tensor  # (T, D) each token's contextual vector (last encoder layer)
    cls: Tensor  # (D,) the [CLS] vector, d2l's representation of the whole input
    segments: Tensor  # (T,) 0 for [CLS] A [SEP], 1 for B [SEP]


class BertFeatures:
    """Encodes one text or a text pair with a trained BERT encoder (in eval mode, no gradients)."""

    def __init__(self, bert: BertModel, tokenizer: TextTokenizer, lowercase: bool = True):
        self.bert = bert.eval()
        self.tokenizer = tokenizer
        self.lowercase = lowercase  # WikiText-2 is lowercased before tokenizing (d2l), so inputs must be too
        self.cls_id, self.sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", lowercase: bool = True) -> BertFeatures:
        """The encoder of a BERT run (pretraining, or fine-tuning: any net holding a ``bert`` BertModel) and
        the tokenizer it was trained with, both rebuilt from the checkpoint alone."""
        run = restore_run(path)
        net = run.module.net
        bert = getattr(net, "bert", net)
        if not isinstance(bert, BertModel):
            raise ValueError(f"{path} holds a {type(net).__name__}, which has no BERT encoder")
        tokenizer = getattr(run.datamodule, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"{path} carries no tokenizer for {type(run.datamodule).__name__}")
        return cls(bert.to(device), tokenizer, lowercase)

    @torch.no_grad()
    def encode(self, text_a: str, text_b: str | None = None) -> TokenFeatures:
        """Contextual vectors of ``[CLS] text_a [SEP]`` or ``[CLS] text_a [SEP] text_b [SEP]``."""
        texts = [text_a] if text_b is None else [text_a, text_b]
        if self.lowercase:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer.encode_batch(texts)
        ids = [self.cls_id, *encoded[0], self.sep_id]
        segments = [0] * len(ids)
        if text_b is not None:
            ids += [*encoded[1], self.sep_id]
            segments += [1] * (len(encoded[1]) + 1)
        if len(ids) > self.bert.max_len:
            raise ValueError(
                f"the input is {len(ids)} tokens with [CLS]/[SEP], the model takes at most max_len={self.bert.max_len}"
            )
        device = next(self.bert.parameters()).device
        tokens = torch.tensor([ids], device=device)  # (1, T)
        segment_ids = torch.tensor([segments], device=device)
        hidden = self.bert(tokens, segment_ids, torch.tensor([len(ids)], device=device)).hidden[0]  # (T, D)
        return TokenFeatures([self.tokenizer.id_to_token(i) for i in ids], hidden.cpu(), hidden[0].cpu(), segment_ids[0].cpu())


USAGE = (
    "usage: attnlab-features ckpt_path=PATH text=TEXT [text_b=TEXT] [output=FILE.pt] [device=cpu|cuda]\n"
    "  prints each token's contextual vector (first dims) and the [CLS] vector, or saves them with torch.save"
)
KEYS = ("ckpt_path", "text", "text_b", "output", "device")


def parse_arguments(argv: list[str]) -> dict[str, str]:
    """``key=value`` pairs (see ``attnlab.cli.arguments``); ``ckpt_path`` and ``text`` are required."""
    return parse_key_values(argv, KEYS, defaults={"device": "cpu"}, required=("ckpt_path", "text"))


def run(argv: list[str]) -> None:
    args = parse_arguments(argv)
    encoder = BertFeatures.from_checkpoint(args["ckpt_path"], device=args["device"])
    result = encoder.encode(args["text"], args.get("text_b"))
    if "output" in args:
        path = Path(args["output"])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(result._asdict(), path)  # plain tensors and strings: loads with weights_only=True
        print(f"saved {len(result.tokens)} token vectors of size {result.vectors.shape[1]} to {path}")
        return
    width = max(len(token) for token in result.tokens)
    for token, segment, vector in zip(result.tokens, result.segments.tolist(), result.vectors):
        shown = " ".join(f"{v:+.3f}" for v in vector[:PRINTED_DIMS].tolist())
        print(f"{token:<{width}}  seg {segment}  [{shown} ...]  |v|={vector.norm():.3f}")
    print(f"{len(result.tokens)} tokens x {result.vectors.shape[1]} dims; the [CLS] vector is the first row; "
          "output=FILE.pt saves every value")


def main(argv: list[str] | None = None) -> None:
    run_main("attnlab-features", USAGE, run, argv)


if __name__ == "__main__":
    main()
