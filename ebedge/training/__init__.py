"""The training loop, data pipelines, low precision, FLOPs accounting, DDP."""
