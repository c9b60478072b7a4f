"""Datasets and the input pipeline: the class tables (``classes``), sources
(``image_folder``, ``builders``), ``transforms``, ``pipeline``, U-Net's ``elastic``
deformation and ``weight_map``, the start-up checks (``survey``, ``checks``) and the
``prepare`` / ``inspect`` command lines."""
