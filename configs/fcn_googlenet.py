"""FCN-GoogLeNet: Inception v1 made fully convolutional, scored at stride 32.

    python -m fcnjax.train --config configs/fcn_googlenet.py --workdir /tmp/fcn_googlenet \
        --config.input.data_dir=/data/voc_folder

The reference never released it. The paper's line search gave a fixed learning rate of
5e-5 for FCN-GoogLeNet with minibatches of 20 images and momentum 0.9 (section 4.3); this
config reads that as a normalised loss averaged over 20 accumulated images. Paper (Table 1):
42.5 mean IU on VOC2011 val. No GoogLeNet converter ships with fcnjax yet: pass weights
through config.init or train from scratch.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn_googlenet"
    config.loss.reduction = "mean"
    config.optim.learning_rate = 5e-5
    config.optim.momentum = 0.9
    config.optim.accumulate = 20
    config.train.steps = 2_000_000
    config.train.eval_every = 80_000
    config.train.checkpoint_every = 80_000
    return config
