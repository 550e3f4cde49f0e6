__version__ = "0.0.1"
from . import synthetic  # registers the synthetic data specs with medvlm.data.load
