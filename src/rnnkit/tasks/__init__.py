"""One module per application: its data, its model, its metrics, its baselines.

Each task module exposes ``register(subparsers)``, which adds its
``rnnkit <task> ...`` commands; ``rnnkit.cli`` only collects them.
"""
