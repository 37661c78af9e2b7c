"""The activations and losses of issue 15 on real data (table.py)."""
