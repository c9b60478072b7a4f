"""Datasets and the input pipeline: sources (``image_folder``), ``transforms``, ``pipeline``."""
