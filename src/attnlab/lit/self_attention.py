"""BERT's attention after every validation: the encoder's self-attention of one fixed validation input, every layer
and head, as a heatmap grid in the run dir (``plots/attention_self.png``) and the image-capable loggers; what
:class:`attnlab.lit.seq2seq.Seq2SeqModule` does for the Transformer.

Shape legend: L layers, H heads, T tokens of the input.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from attnlab.data.tokenizers import TextTokenizer
from attnlab.lit import plots
from attnlab.lit.figures import publish_figure


class ExampleData(Protocol):
    """What the plot asks of the datamodule (``WikiText2DataModule``, ``ClassificationDataModule``)."""

    tokenizer: TextTokenizer  # labels the tokens

    def val_example(self) -> tuple[Tensor, Tensor]: ...  # token ids (T,), segments (T,) of a fixed validation input


class PlotsSelfAttention:
    """LightningModule mixin: after each validation (not the sanity check), rank zero plots the attention of
    ``net.bert`` on the datamodule's ``val_example()`` when ``plot_attention`` is set."""

    plot_attention: bool

    def on_validation_epoch_end(self) -> None:
        trainer = self.trainer
        if not self.plot_attention or trainer.sanity_checking or not trainer.is_global_zero:
            return
        data = trainer.datamodule
        if data is None or not hasattr(data, "val_example"):
            raise ValueError(f"plot_attention needs a datamodule with val_example() and a tokenizer, got "
                             f"{type(data).__name__}; set model.plot_attention=false to train without the plots")
        self._plot_self_attention(data)

    @torch.no_grad()
    def _plot_self_attention(self, data: ExampleData) -> None:
        tokens, segments = data.val_example()
        encoded = self.net.bert(tokens[None].to(self.device), segments[None].to(self.device), need_weights=True)
        weights = torch.stack([layer[0] for layer in encoded.attention_weights]).float().cpu()  # (L, H, T, T)
        labels = [data.tokenizer.id_to_token(token) for token in tokens.tolist()]
        figure = plots.attention_grid(weights, title="self-attention of a validation input", xlabel="keys",
                                      ylabel="queries", xticklabels=labels, yticklabels=labels)
        publish_figure(trainer=self.trainer, name="attention_self", figure=figure)
