"""Shared test setup: make the checkout importable and locate ../shared when it is beside it."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED = os.path.join(os.path.dirname(ROOT), "shared")
FIXTURES = os.path.join(SHARED, "fixtures")
CIFAR_JPEG = os.path.join(SHARED, "data", "cifar10-jpeg")
