"""FCN-8s at-once: FCN-8s trained in one stage from VGG16, skips scaled 0.01 / 0.0001.

    python -m fcnjax.train --config configs/fcn8s_atonce.py --workdir /tmp/fcn8s_atonce \
        --config.input.data_dir=/data/voc_folder \
        --config.init.torchvision_vgg16=/weights/vgg16-397923af.pth

The reference's alternative to staged training: fixed lr 1e-10 (sum loss), momentum 0.99,
300,000 iterations of one whole image. Reference: 65.4 mean IU on seg11valid.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn8s_atonce"
    config.optim.learning_rate = 1e-10
    config.train.steps = 300_000
    return config
