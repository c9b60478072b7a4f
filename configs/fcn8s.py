"""FCN-8s (VGG16, pool4 and pool3 skips): the reference's third stage, lr 1e-14.

    python -m fcnjax.train --config configs/fcn8s.py --workdir /tmp/fcn8s \
        --config.input.data_dir=/data/voc_folder --config.init.checkpoint=/tmp/fcn16s

The reference initialises FCN-8s from a trained FCN-16s (score_pool3 starts at zero).
Reference: 65.5 mean IU on seg11valid (62.7 on VOC2011 test in the paper).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn8s"
    config.optim.learning_rate = 1e-14
    return config
