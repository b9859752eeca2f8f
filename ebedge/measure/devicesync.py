"""Finish queued GPU work at a window's edges, so it is charged to the window that issued it.

CUDA kernels run asynchronously: without a sync, a window ends while its work is still queued
and the next window pays for it (Zeus syncs at `begin_window`/`end_window` for the same reason).
Only where CUDA is in use: torch already imported by the caller and CUDA initialised; otherwise a
no-op that imports nothing (Monitor stays torch-free). torch 1.10 has every call used here.
"""
import sys


def sync_cuda():
    """Wait for every initialised CUDA device's queue to drain; no-op without CUDA in use."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_available() or not cuda.is_initialized():
        return
    for index in range(cuda.device_count()):
        cuda.synchronize(index)
