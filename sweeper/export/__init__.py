"""Getting results out: the best config as a Python object, JSON or YAML."""

from sweeper.export._best import DEFAULT_STORAGE, BestConfig, best_config, render

__all__ = ["DEFAULT_STORAGE", "BestConfig", "best_config", "render"]
