"""Network-slimming masks, the Early-Bird detector and physical channel pruning."""
