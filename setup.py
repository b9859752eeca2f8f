"""Shim so that old pip/setuptools (JetPack 4.6) can install from setup.cfg."""
from setuptools import setup

setup()
