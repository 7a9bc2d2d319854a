"""The model zoo: every lens on one set of models."""
