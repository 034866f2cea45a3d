"""``attnlab-explore``: a local web page (or one self-contained HTML file) that shows what trained checkpoints
output for a sentence and every attention map behind it, checkpoints side by side."""
