"""FCN-32s-fixed: FCN-32s with only the score layer learning (the paper's Table 2 baseline).

    python -m fcnjax.train --config configs/fcn32s_fixed.py --workdir /tmp/fcn32s_fixed \
        --config.input.data_dir=/data/voc_folder \
        --config.init.torchvision_vgg16=/weights/vgg16-397923af.pth

The paper fine-tunes "only the last layer" (score_fr) on top of the converted VGG16 trunk:
83.0 pixel acc., 59.7 mean acc., 45.4 mean IU, 72.0 f.w. IU against 59.4 mean IU when
everything learns. Every other field is FCN-32s's recipe (configs/fcn32s.py).
"""

from configs import fcn32s


def get_config():
    config = fcn32s.get_config()
    config.optim.trainable = "score_fr"
    return config
