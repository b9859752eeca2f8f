"""`python -m ebedge.cli`."""
from ebedge.cli import main

main()
