"""Baselines the benchmark measures attnlab against, written for this suite (no code copied from d2l or HF).

- ``explicit``: d2l's explicit attention path (query x key matmuls, masked softmax filling -1e6, heads folded
  into the batch) and the Transformer blocks around it, with attnlab's parameter names, so an attnlab
  state dict loads into them and a test proves both compute the same function.
- ``explicit_transformer`` / ``explicit_bert``: the encoder-decoder Transformer and BERT on that path.
- ``torch_transformer``: ``torch.nn.Transformer`` with its own embeddings and output layer.
- ``hf_bert``: ``transformers.BertForPreTraining`` of the same sizes, standard and gathered-head usage.
"""
