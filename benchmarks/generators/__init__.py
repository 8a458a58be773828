"""The corpus generators of benchmarks/corpus.py: one module per provider, plus noise."""
