"""Shim so that old pip/setuptools (JetPack 4.6) can install from setup.cfg.

The version is read from ebedge/__init__.py as text: old setuptools evaluates `attr:` by importing
the package, which would need its dependencies before they are installed."""
import os
import re

from setuptools import setup

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ebedge", "__init__.py")) as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

setup(version=VERSION)
