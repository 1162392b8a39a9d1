"""MLflow tracking: run lifecycle, config and data logging, evaluation logging, model logging.

Nothing here knows about a particular model family: families are `Pricer` objects.
"""
