"""pricer: experiment-tracked product price prediction."""

__version__ = "0.1.0"
