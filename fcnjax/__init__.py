"""fcnjax: fully convolutional networks and U-Net for semantic segmentation in JAX/Flax."""

__version__ = "0.1.0"
