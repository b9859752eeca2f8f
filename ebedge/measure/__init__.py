"""Sampling meters, integrating energy, phase accounting, Monitor, board state."""
