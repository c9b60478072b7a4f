"""FCN-32s (VGG16) as the reference trains it on SBD train, scored on seg11valid.

    python -m fcnjax.train --config configs/fcn32s.py --workdir /tmp/fcn32s \
        --config.input.data_dir=/data/voc_folder \
        --config.init.torchvision_vgg16=/weights/vgg16-397923af.pth

Unnormalized (sum) loss, fixed lr 1e-10, momentum 0.99, weight decay 5e-4, batch 1 whole
image, fixed bilinear upscore: the defaults. ``data_dir`` holds ``train/{image,label}`` (SBD
train) and ``val/{image,label}`` (seg11valid), labels as class-id PNGs with 255 void.
The reference starts from Caffe's VGG16 (BGR, mean-subtracted inputs, as configured here);
torchvision's VGG16 expects RGB scaled by 1/255 and ImageNet's mean and std, so set
``input.bgr``, ``input.mean`` and ``input.scale`` to match the weights you start from.
Reference: 63.6 mean IU on seg11valid.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn32s"
    return config
