"""Experiment configs: ``get_config()`` files for ``--config``; default.py holds every field."""
