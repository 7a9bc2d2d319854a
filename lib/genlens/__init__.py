__version__ = '0.1.0'


def __getattr__(name: str):
    """`genlens.measure` (the module `genlens.measure`, callable as its function `measure`), imported on first use
    so that `import genlens` stays free of torch."""
    if name == "measure":
        import importlib

        return importlib.import_module(".measure", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
