"""`python -m ebedge` (what `torchrun -m ebedge` runs)."""
from ebedge.cli import main

main()
