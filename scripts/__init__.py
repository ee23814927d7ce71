"""Developer scripts: ``python -m scripts.demo`` from the repository root (``make demo``)."""
