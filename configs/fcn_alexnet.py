"""FCN-AlexNet as the reference trains it: normalised loss, lr 1e-4, 20 images per update.

    python -m fcnjax.train --config configs/fcn_alexnet.py --workdir /tmp/fcn_alexnet \
        --config.input.data_dir=/data/voc_folder

The reference (voc-fcn-alexnet) averages the per-pixel loss (normalize: true), uses
momentum 0.9 and accumulates the gradients of 20 single images per update (Caffe's
iter_size 20; here optim.accumulate = 20, so train.steps counts images: 2,000,000 images are
100,000 updates). Starts from a CaffeNet trunk; no CaffeNet converter ships with fcnjax yet,
so pass your own weights through config.init or train from scratch. Reference: 48.0 mean IU
on seg11valid; the paper's Table 1: 39.8 mean IU on VOC2011 val.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn_alexnet"
    config.loss.reduction = "mean"
    config.optim.learning_rate = 1e-4
    config.optim.momentum = 0.9
    config.optim.accumulate = 20
    config.train.steps = 2_000_000
    config.train.eval_every = 80_000
    config.train.checkpoint_every = 80_000
    return config
