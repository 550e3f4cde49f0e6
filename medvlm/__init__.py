__version__ = "0.0.1"
from . import synthetic  # noqa: F401 (imported for its effect) registers the synthetic data specs with medvlm.data.load
