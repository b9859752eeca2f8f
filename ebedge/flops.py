"""`ebedge.flops`, the FLOPs API's documented import path; the code lives in `ebedge.training.flops`."""
from ebedge.training.flops import forward_flops, summary, train_flops, training_cost  # noqa: F401
