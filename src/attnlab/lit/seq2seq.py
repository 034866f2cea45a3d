"""LightningModule for sequence-to-sequence translation, shared by the Bahdanau GRU and the Transformer.

Trains with teacher forcing on a padding-masked (optionally label-smoothed) cross-entropy. Evaluation decodes
every sentence with the configured search and scores the whole split at once, in corpus order, against the raw
references its ``text`` gives (never the tokenized, ``<unk>``-ed or truncated target ids): corpus BLEU,
chrF and TER as sacrebleu computes them, the per-token loss and the token accuracy. Under DDP each rank evaluates
its own share of the sentences and the results are gathered, so the figures equal a single process's exactly.
Every evaluation leaves ``translations/<split>.{src,hyp,ref}`` and ``<split>.scores.json`` in the run dir. The net
follows ``attnlab.models.decoding.Seq2SeqNet``; what it reads of the data (tokenizers, source encoding,
detokenizing, references) is its ``text``, a :class:`~attnlab.data.spec.TranslationText` handed over by the wiring.

Shape legend: B batch, S source length, T target length, V target vocabulary.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.data.pairs import TranslationBatch
from attnlab.data.spec import TranslationText
from attnlab.lit import plots
from attnlab.lit.figures import publish_figure
from attnlab.lit.scores import TRANSLATIONS_DIR, MetricScore, corpus_scores, d2l_bleu, write_translations
from attnlab.training.strategies import gather_objects
from attnlab.lit.task import StepOutput, TaskModule
from attnlab.models.decoding import Hypotheses, SearchConfig, Seq2SeqNet


class LossOutput(NamedTuple):
    loss: Tensor  # () mean over real target tokens
    logits: Tensor  # (B, T, V)
    num_tokens: Tensor  # () real (non-padding) target tokens


class SentenceResult(NamedTuple):
    """One evaluated sentence: what a rank hands over to be scored with all the others."""

    index: int  # the pair's position in the split's references (TranslationText.references)
    hypothesis: str  # the decoded, detokenized translation
    loss: float  # summed cross-entropy of its target tokens (teacher-forced, no smoothing)
    tokens: int  # its real target tokens (+ <eos>)
    correct: int  # of them, predicted right under teacher forcing


IGNORED = -100  # the target id cross-entropy skips (PyTorch's ignore_index)


def real_targets(batch: TranslationBatch) -> Tensor:
    """``(B, T)`` True at each pair's real target tokens (y and its <eos>), from the lengths collation counted."""
    return torch.arange(batch.tgt_out.shape[1], device=batch.tgt_out.device) < batch.tgt_lens[:, None]


def masked_cross_entropy(logits: Tensor, targets: Tensor, ignore_id: int, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy over the targets other than ``ignore_id`` (the padding); with smoothing eps the target
    distribution is ``(1 - eps) one_hot + eps / V`` (Szegedy et al., 2016; Vaswani et al., 2017, sec. 5.4)."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=ignore_id, label_smoothing=label_smoothing
    )


class Seq2SeqModule(TaskModule):
    """Teacher-forced training and decoded evaluation of a ``Seq2SeqNet``.

    Args:
        net, optimizer, scheduler, compile: as :class:`~attnlab.lit.task.TaskModule`.
        label_smoothing: eps of the training loss (the logged val/test loss is the plain cross-entropy).
        decode: search options (``SearchConfig``: strategy greedy|beam, beam_size, length_penalty, max_steps,
            use_cache) used for val/test BLEU and translation.
        examples: (source, reference) pairs translated and scored with d2l's BLEU at the end of a test; None: the
            data's own (fra-eng: d2l's four sentences; none for another corpus).
        plot_attention: save every head's attention of the first validation pair after each validation/test.

    Evaluation needs ``text`` (:class:`~attnlab.data.spec.TranslationText`, the DataModule's ``task_text()``).
    """

    net: Seq2SeqNet
    text: TranslationText | None
    progress_bar = ("loss", "bleu")

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        label_smoothing: float = 0.0,
        decode: Mapping[str, Any] | None = None,
        examples: Sequence[Sequence[str]] | None = None,
        plot_attention: bool = True,
        compile: bool = False,
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        decode = {str(key): value for key, value in (decode or {}).items()}  # plain types for the checkpoint
        if examples is not None:
            examples = [[str(text) for text in pair] for pair in examples]
            if bad := [pair for pair in examples if len(pair) != 2]:
                raise ValueError(f"examples must be [source, reference] pairs, got {bad}")
        super().__init__(net, optimizer, scheduler, compile=compile)  # saves the (converted) arguments above
        self.label_smoothing = label_smoothing
        self.search_config = SearchConfig.from_dict(decode)
        self.search = self.search_config.build()
        self.examples = examples
        self.plot_attention = plot_attention
        self._results: dict[str, list[SentenceResult]] = {}  # this rank's evaluated sentences, by stage
        self.scores: dict[str, dict[str, MetricScore]] = {}  # the last evaluation's corpus scores, by stage

    # ---- loss ------------------------------------------------------------------------------------------------
    def compute_loss(self, batch: TranslationBatch, label_smoothing: float | None = None) -> LossOutput:
        output = self.net(batch.src, batch.src_lens, batch.tgt_in)
        smoothing = self.label_smoothing if label_smoothing is None else label_smoothing
        real = real_targets(batch)  # (B, T)
        loss = masked_cross_entropy(output.logits, batch.tgt_out.masked_fill(~real, IGNORED), IGNORED, smoothing)
        return LossOutput(loss, output.logits, real.sum())

    def step(self, batch: TranslationBatch, stage: str) -> StepOutput:
        if stage == "train":
            out = self.compute_loss(batch)
            self.log_metrics(stage, batch.src.shape[0], loss=out.loss)
        else:
            out = self._evaluate(batch, stage)
        return StepOutput(out.loss, int(out.num_tokens))

    # ---- evaluation ------------------------------------------------------------------------------------------
    def translate(self, src: Tensor, src_lens: Tensor) -> Hypotheses:
        """Decode a batch with the configured search (eval mode, no gradients)."""
        return self.search(self.net, src.to(self.device), src_lens.to(self.device))

    def _evaluate(self, batch: TranslationBatch, stage: str) -> LossOutput:
        """Teacher-forced loss and accuracy and the decoded translation of each sentence, kept for the epoch's end."""
        logits = self.net(batch.src, batch.src_lens, batch.tgt_in).logits  # (B, T, V)
        real = real_targets(batch)  # (B, T)
        token_loss = F.cross_entropy(  # (B, T), 0 at padding
            logits.transpose(1, 2).float(), batch.tgt_out.masked_fill(~real, IGNORED), reduction="none"
        )
        correct = (logits.argmax(-1) == batch.tgt_out) & real  # (B, T)
        hypotheses = self._text().detokenize(self.translate(batch.src, batch.src_lens).tokens.cpu())
        self._results.setdefault(stage, []).extend(
            SentenceResult(*row) for row in zip(
                batch.index.tolist(), hypotheses, token_loss.double().sum(1).tolist(), real.sum(1).tolist(),
                correct.sum(1).tolist(),
            )
        )
        return LossOutput(token_loss.sum() / real.sum(), logits, real.sum())

    def _score_split(self, stage: str) -> None:
        """Gather every rank's sentences, score the split in corpus order against its raw references, log the
        scores (the same on every rank) and, on rank 0, write them with the sentences they come from."""
        results = sorted(gather_objects(self._results.pop(stage, [])), key=lambda result: result.index)
        if not results:
            return
        indexes = [result.index for result in results]
        if len(set(indexes)) != len(indexes):
            raise RuntimeError(f"{stage}: {len(indexes) - len(set(indexes))} sentences were evaluated twice")
        sources, references = self._text().references(stage)
        hypotheses = [result.hypothesis for result in results]
        sources, references = [sources[i] for i in indexes], [references[i] for i in indexes]
        self.scores[stage] = scores = corpus_scores(hypotheses, references)
        tokens = sum(result.tokens for result in results)
        values = {
            "loss": math.fsum(result.loss for result in results) / tokens,  # exactly rounded: any order, any rank
            "token_acc": sum(result.correct for result in results) / tokens,
            **{name: score.score for name, score in scores.items()},
        }
        for name, value in values.items():  # equal on every rank: "max" hands each rank the same value back
            self.log(f"{stage}/{name}", torch.tensor(value, dtype=torch.float64), prog_bar=name in self.progress_bar,
                     sync_dist=True, reduce_fx="max")
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            directory = Path(self.trainer.default_root_dir) / TRANSLATIONS_DIR
            write_translations(directory, stage, sources, hypotheses, references, scores)

    def start_evaluation(self, stage: str) -> None:
        self._results.pop(stage, None)

    def finish_evaluation(self, stage: str) -> None:
        """Corpus scores of the split; then the attention plot (not in the sanity check) and, after a test, the
        fixed examples."""
        self._score_split(stage)
        if self.plot_attention and not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._plot_attention()
        if stage == "test":
            self._score_examples()

    # ---- reports ---------------------------------------------------------------------------------------------
    def _text(self) -> TranslationText:
        if self.text is None:
            raise ValueError("Seq2SeqModule evaluates through its data's text (tokenizers, references): set "
                             "module.text = datamodule.task_text() before trainer.fit/validate/test")
        return self.text

    @torch.no_grad()
    def _plot_attention(self) -> None:
        """Each head of every layer's encoder self-, decoder self- and cross-attention for the first
        validation pair, teacher-forced with its reference."""
        text = self._text()
        sources, targets = text.references("val")
        if not sources:
            return
        source, target = sources[0], targets[0]
        src, src_lens = text.source_ids([source])
        tgt_in = torch.tensor([[self.net.bos_id, *text.tgt_tokenizer.encode_batch([target])[0]]], device=self.device)
        output = self.net(src.to(self.device), src_lens.to(self.device), tgt_in, need_weights=True)
        src_tokens = [text.src_tokenizer.id_to_token(i) for i in src[0, : int(src_lens[0])].tolist()]
        tgt_tokens = [text.tgt_tokenizer.id_to_token(i) for i in tgt_in[0].tolist()]
        views = {  # name: (weights per layer, query tokens, key tokens)
            "encoder_self": (output.encoder_self_weights, src_tokens, src_tokens),
            "decoder_self": (output.decoder_self_weights, tgt_tokens, tgt_tokens),
            "cross": (output.cross_weights, tgt_tokens, src_tokens),
        }
        for name, (weights, queries, keys) in views.items():
            layers = [w[0] for w in weights if w is not None]  # (H, Tq, Tk) each
            if not layers:
                continue
            figure = plots.attention_grid(
                torch.stack(layers).float().cpu(), title=f"{name.replace('_', ' ')} attention: {source}",
                xlabel="keys", ylabel="queries", xticklabels=keys, yticklabels=queries,
            )
            publish_figure(self.trainer, f"attention_{name}", figure)

    @torch.no_grad()
    def _score_examples(self) -> None:
        """Translate the fixed examples (the module's, else the data's) and print them with d2l's sentence BLEU
        (k = 2), as d2l does."""
        text = self._text()
        examples = text.examples if self.examples is None else self.examples
        if not examples:
            return
        sources = [source for source, _ in examples]
        src, src_lens = text.source_ids(sources)
        predictions = text.detokenize(self.translate(src, src_lens).tokens.cpu())
        scores = []
        for (source, reference), prediction in zip(examples, predictions):
            scores.append(d2l_bleu(prediction, reference, k=2))
            if self.trainer.is_global_zero:
                print(f"{source} => {prediction}, bleu {scores[-1]:.3f}")
        self.log("test/d2l_bleu", sum(scores) / len(scores), batch_size=len(scores), sync_dist=True)
