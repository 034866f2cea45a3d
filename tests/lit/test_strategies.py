"""module_classes: FSDP's wrap policy from dotted class names, with clear errors."""
from __future__ import annotations

import pytest

from attnlab.layers.blocks import TransformerBlock
from attnlab.lit.strategies import module_classes


def test_names_become_the_classes():
    assert module_classes(["attnlab.layers.blocks.TransformerBlock"]) == {TransformerBlock}


@pytest.mark.parametrize("path, message", [("attnlab.layers.blocks.Nope", "cannot import module class"),
                                           ("nope.Block", "cannot import module class"),
                                           ("attnlab.lit.strategies.module_classes", "not a torch.nn.Module")])
def test_bad_names_are_rejected(path: str, message: str):
    with pytest.raises(ValueError, match=message):
        module_classes([path])
