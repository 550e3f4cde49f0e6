"Thin shim: everything lives in pyproject.toml; this keeps `python setup.py develop` habits working."
from setuptools import setup

setup()
