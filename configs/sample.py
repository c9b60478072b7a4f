"""A small U-Net on the ISBI 2012 sample shipped in the package: the README's demo.

    python -m fcnjax.train --config configs/sample.py --workdir /tmp/fcnjax_sample

About a minute on two CPU cores: a "same"-padded U-Net (16 first-level channels, 4 levels,
1.9M parameters) trained for 400 SGD steps on random 64x64 crops of six 128x128 EM images,
scored on two whole held-out images (val mean IU about 0.73, pixel accuracy 0.86; predicting
"cell" everywhere scores 0.68 pixel accuracy and 0.34 mean IU).
"""

import os

import ml_collections

from configs import default

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                      "fcnjax", "data", "sample", "isbi2012")


def get_config() -> ml_collections.ConfigDict:
    config = default.get_config()
    config.seed = 0
    config.prng_impl = "rbg"                  # threefry's init compiles for ~10 s on CPU
    config.model = ml_collections.ConfigDict(dict(
        name="unet", num_classes=2, features=16, levels=4, padding="same",
        upsampling="transpose", dropout=0.5, dtype="float32", norm="none", norm_groups=32,
        remat="none"))

    config.input.data_dir = os.path.normpath(SAMPLE)
    config.input.image_mode = "L"
    config.input.label_values = (0, 255)      # 0 membrane -> class 0, 255 interior -> class 1
    config.input.bgr = False
    config.input.mean = (127.5,)
    config.input.scale = 1 / 127.5            # pixels to [-1, 1]
    config.input.crop_size = (64, 64)
    config.input.eval_size = ()               # whole 128x128 images
    config.input.flip = True

    config.loss.reduction = "mean"
    config.optim.learning_rate = 0.05
    config.optim.momentum = 0.9
    config.optim.weight_decay = 0.0
    config.optim.schedule = "cosine"

    config.train.steps = 400
    config.train.batch_size = 4
    config.train.log_every = 50
    config.train.eval_every = 200
    config.train.checkpoint_every = 200
    config.eval.num_draw = 2
    config.eval.classes = "isbi2012"          # membrane, cell
    config.eval.isbi_challenge = True         # evaluate adds the challenge's scores
    return config
