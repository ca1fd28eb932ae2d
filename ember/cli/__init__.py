"""The `ember` command line: one subcommand per module (`info` now; `train`, `run`, `serve` later).

`ember.cli.main.main(argv)` is the console script declared in pyproject.toml.
"""
