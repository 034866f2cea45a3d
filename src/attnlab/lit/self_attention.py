"""BERT's attention after every validation: the encoder's self-attention of one fixed validation input, every layer
and head, as a heatmap grid in the run dir (``plots/attention_self.png``) and the image-capable loggers; what
:class:`attnlab.lit.seq2seq.Seq2SeqModule` does for the Transformer.

Shape legend: L layers, H heads, T tokens of the input.
"""
from __future__ import annotations

import torch

from attnlab.data.spec import EncoderText
from attnlab.lit import plots
from attnlab.lit.figures import publish_figure


class PlotsSelfAttention:
    """TaskModule mixin: after each validation (not the sanity check), rank zero plots the attention of
    ``net.bert`` on the fixed input of its ``text`` (:class:`~attnlab.data.spec.EncoderText`) when
    ``plot_attention`` is set."""

    plot_attention: bool
    text: EncoderText | None

    def finish_evaluation(self, stage: str) -> None:
        super().finish_evaluation(stage)
        trainer = self.trainer
        if stage != "val" or not self.plot_attention or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self.text is None:
            raise ValueError(f"plot_attention needs the data's tokenizer and a validation input: set "
                             f"{type(self).__name__}.text = datamodule.task_text(), or model.plot_attention=false")
        self._plot_self_attention(self.text)

    @torch.no_grad()
    def _plot_self_attention(self, text: EncoderText) -> None:
        tokens, segments = text.example()
        encoded = self.net.bert(tokens[None].to(self.device), segments[None].to(self.device), need_weights=True)
        weights = torch.stack([layer[0] for layer in encoded.attention_weights]).float().cpu()  # (L, H, T, T)
        labels = [text.tokenizer.id_to_token(token) for token in tokens.tolist()]
        figure = plots.attention_grid(weights, title="self-attention of a validation input", xlabel="keys",
                                      ylabel="queries", xticklabels=labels, yticklabels=labels)
        publish_figure(trainer=self.trainer, name="attention_self", figure=figure)
