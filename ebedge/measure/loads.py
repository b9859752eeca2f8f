"""Steady loads that ebedge makes itself, so that a meter can be qualified without a workload:
busy loops on CPU cores (one process each, so the interpreter lock cannot serialise them) and a
matmul loop on the GPU where CUDA exists."""
import collections
import multiprocessing
import os
import threading


# How many cores spin and whether the GPU multiplies matrices.
LoadSpec = collections.namedtuple("LoadSpec", "cpu_cores gpu")
IDLE = LoadSpec(0, False)


def _spin(stop, parent):
    """Spin until told to stop, or until the process that started it is gone (killed before it
    could say so): a board must never be left with orphaned busy loops."""
    x = 0
    while not stop.is_set() and os.getppid() == parent:
        for _ in range(20000):
            x += 1


def _matmul(stop):
    import torch  # only where the GPU level runs
    a = torch.randn(2048, 2048, device="cuda")
    while not stop.is_set():
        a = torch.mm(a, a).clamp_(-1.0, 1.0)
        torch.cuda.synchronize()


def cuda_available():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


class Load(object):
    """A running LoadSpec; `stop()` ends it and waits for its workers."""

    def __init__(self, spec):
        self.spec = spec
        self._stop_cpu = multiprocessing.Event()
        self._stop_gpu = threading.Event()
        self._workers = []
        for _ in range(spec.cpu_cores):
            p = multiprocessing.Process(target=_spin, args=(self._stop_cpu, os.getpid()),
                                        name="ebedge-spin")
            p.daemon = True
            p.start()
            self._workers.append(p)
        if spec.gpu:
            t = threading.Thread(target=_matmul, args=(self._stop_gpu,), name="ebedge-matmul")
            t.daemon = True
            t.start()
            self._workers.append(t)

    def stop(self):
        self._stop_cpu.set()
        self._stop_gpu.set()
        for w in self._workers:
            w.join(10)
        self._workers = []
