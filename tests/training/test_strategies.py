"""FSDP's wrap policy from dotted class names (clear errors), and its activation checkpointing on the base models."""
from __future__ import annotations

import copy

import pytest
import torch
from hydra.utils import instantiate
from lightning_fabric.strategies.fsdp import _setup_activation_checkpointing
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from attnlab.cli.validate import fill_missing
from attnlab.layers.blocks import PostNormBlock, PreNormBlock, TransformerBlock
from attnlab.training.strategies import module_classes


def test_names_become_the_classes():
    assert module_classes(["attnlab.layers.blocks.TransformerBlock"]) == {TransformerBlock}


@pytest.mark.parametrize("path, message", [("attnlab.layers.blocks.Nope", "cannot import module class"),
                                           ("nope.Block", "cannot import module class"),
                                           ("attnlab.training.strategies.module_classes", "not a torch.nn.Module")])
def test_bad_names_are_rejected(path: str, message: str):
    with pytest.raises(ValueError, match=message):
        module_classes([path])


@pytest.mark.parametrize("model, blocks", [("transformer_base", 12), ("bert_base", 12)])
def test_activation_checkpointing_wraps_every_block_and_keeps_the_gradients(compose, model: str, blocks: int):
    """``trainer=fsdp trainer.strategy.activation_checkpointing=true`` for the base models: the policy FSDP applies
    (Lightning's own function, run here on CPU without the sharding) wraps each block, and a training step's
    loss and gradients equal the plain model's; only the activations kept for the backward pass change."""
    experiment = "transformer_mt" if model == "transformer_base" else "bert_pretrain"
    net_node = "model.net" if model == "transformer_base" else "model.net.bert"
    cfg = compose(f"experiment={experiment}", f"model={model}", "trainer=fsdp",
                  "trainer.strategy.activation_checkpointing=true", f"{net_node}.d_model=16", f"{net_node}.num_heads=2",
                  f"{net_node}.block.d_ff=32", f"{net_node}.dropout=0.0")
    data = ({"src_vocab_size": 30, "tgt_vocab_size": 30, "pad_id": 1, "bos_id": 2, "eos_id": 3}
            if model == "transformer_base" else {"vocab_size": 30, "pad_id": 0, "max_len": 12})
    fill_missing(cfg.model.net, data)
    torch.manual_seed(0)
    plain = instantiate(cfg.model.net)
    checkpointed = copy.deepcopy(plain)
    strategy = instantiate(cfg.trainer.strategy)
    _setup_activation_checkpointing(checkpointed, strategy._activation_checkpointing_kwargs)
    wrapped = [m for m in checkpointed.modules() if isinstance(m, CheckpointWrapper)]
    assert len(wrapped) == blocks and all(isinstance(m._checkpoint_wrapped_module, (PostNormBlock, PreNormBlock))
                                          for m in wrapped)

    tokens = torch.randint(4, 30, (3, 7))
    lengths = torch.tensor([7, 5, 3])
    losses = []
    for net in (plain, checkpointed):
        if model == "transformer_base":
            loss = net(tokens, lengths, tokens).logits.pow(2).mean()
        else:
            out = net(tokens, torch.zeros_like(tokens), lengths, torch.tensor([[1, 2]] * 3))
            loss = out.mlm_logits.pow(2).mean() + out.nsp_logits.pow(2).mean()
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1])
    named = {name.replace("._checkpoint_wrapped_module", ""): p for name, p in checkpointed.named_parameters()}
    assert named.keys() == dict(plain.named_parameters()).keys()
    for name, param in plain.named_parameters():
        torch.testing.assert_close(named[name].grad, param.grad, msg=name)
