"""``compile=True`` on every task module: ``configure_model`` compiles the net in place, exactly once."""
from functools import partial

import pytest
import torch
from tiny_models import tiny_bert, tiny_transformer

from attnlab.attention.kernels import LearnedGaussianKernel
from attnlab.lit.classification import ClassificationModule
from attnlab.lit.pretraining import PretrainingModule
from attnlab.lit.regression import KernelRegressionModule
from attnlab.lit.seq2seq import Seq2SeqModule
from attnlab.models.bert import BertForPretraining
from attnlab.models.bert_classifier import BertClassifier
from attnlab.models.nadaraya_watson import NadarayaWatson

TINY = dict(pad_id=0, max_len=16, d_model=8, num_heads=2, num_layers=1, d_ff=16)
ADAM = partial(torch.optim.Adam, lr=1e-3)

MODULES = {
    "regression": lambda compile: KernelRegressionModule(NadarayaWatson(LearnedGaussianKernel()), compile=compile),
    "seq2seq": lambda compile: Seq2SeqModule(
        tiny_transformer(12, 12, pad_id=0, bos_id=1, eos_id=2, d_model=8, num_encoder_layers=1, num_decoder_layers=1,
                         d_ff=16, max_len=16),
        ADAM, plot_attention=False, compile=compile,
    ),
    "pretraining": lambda compile: PretrainingModule(BertForPretraining(tiny_bert(12, **TINY)), ADAM, compile=compile),
    "classification": lambda compile: ClassificationModule(
        BertClassifier(tiny_bert(12, **TINY), num_classes=2), ADAM, compile=compile
    ),
}


@pytest.mark.parametrize("name", MODULES)
def test_compile_true_compiles_the_net_once_in_place(name, monkeypatch):
    module = MODULES[name](True)
    assert module.hparams.compile is True  # saved, so a checkpoint rebuilds the module compiled too
    keys = list(module.state_dict())
    calls = []
    compile_in_place = module.net.compile
    monkeypatch.setattr(module.net, "compile", lambda: calls.append(1) or compile_in_place())
    module.configure_model()
    module.configure_model()  # Lightning calls it again for test after fit
    assert len(calls) == 1
    assert module.net._compiled_call_impl is not None  # nn.Module.compile's in-place compiled __call__
    assert list(module.state_dict()) == keys  # no "_orig_mod." prefixes: eager checkpoints stay loadable


@pytest.mark.parametrize("name", MODULES)
def test_compile_false_leaves_the_net_eager(name):
    module = MODULES[name](False)
    module.configure_model()
    assert module.net._compiled_call_impl is None
