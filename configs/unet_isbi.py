"""U-Net as in the paper on the ISBI 2012 EM training images (valid convs, 572x572 tiles).

    python -m fcnjax.train --config configs/unet_isbi.py --workdir /tmp/unet_isbi \
        --config.input.data_dir=/path/to/isbi2012

``data_dir`` holds ``train/{image,label}/N.png`` (30 images, 512x512, labels 255 = cell,
0 = membrane). The challenge's test labels were never released, so the eval split defaults
to the training images (a fit check); point ``eval_split`` at a held-out folder to measure
generalisation. Paper: 23-layer U-Net, 64 channels first level, dropout ending the
contracting path, one 572x572 tile per batch with mirrored context (overlap-tile), SGD
momentum 0.99, std sqrt(2/N) init. Not in the paper, chosen here: learning rate, steps,
mean loss, no weight decay, [-1, 1] input scaling. Not implemented yet: the weighted loss
and elastic deformations.
"""

import ml_collections

from configs import default


def get_config():
    config = default.get_config()
    config.model = ml_collections.ConfigDict(dict(
        name="unet", num_classes=2, features=64, levels=4, padding="valid",
        upsampling="transpose", dropout=0.5, dtype="float32"))

    config.input.eval_split = "train"
    config.input.image_mode = "L"
    config.input.label_values = (0, 255)      # 0 membrane -> class 0, 255 cell -> class 1
    config.input.bgr = False
    config.input.mean = (127.5,)
    config.input.scale = 1 / 127.5
    config.input.mirror_pad = 92              # context the valid U-Net loses per side
    config.input.crop_size = (572, 572)       # one tile -> 388x388 scores
    config.input.eval_size = (700, 700)       # 512 + 2 * 92 mirrored, padded to a valid size
    config.input.flip = True

    config.loss.reduction = "mean"
    config.optim.learning_rate = 0.01
    config.optim.weight_decay = 0.0
    config.train.steps = 10_000
    config.train.log_every = 50
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 1_000
    config.eval.num_draw = 2
    return config
