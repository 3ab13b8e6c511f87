"""Data sources, downloads, splits and mixtures."""
