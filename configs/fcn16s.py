"""FCN-16s (VGG16, pool4 skip): the reference's second stage, lr 1e-12.

    python -m fcnjax.train --config configs/fcn16s.py --workdir /tmp/fcn16s \
        --config.input.data_dir=/data/voc_folder --config.init.checkpoint=/tmp/fcn32s

The reference initialises FCN-16s from a trained FCN-32s (score_pool4 starts at zero).
Reference: 65.0 mean IU on seg11valid.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn16s"
    config.optim.learning_rate = 1e-12
    return config
