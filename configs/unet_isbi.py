"""U-Net as in the paper on the ISBI 2012 EM training images (valid convs, 572x572 tiles).

    python -m fcnjax.train --config configs/unet_isbi.py --workdir /tmp/unet_isbi \
        --config.input.data_dir=/path/to/isbi2012

``data_dir`` holds ``train/{image,label}/N.png`` (30 images, 512x512, labels 255 = cell,
0 = membrane). The challenge's test labels were never released, so the 30 labelled images
are split: 0-24 train, 25-29 are the eval images (``train_ids``, ``eval_ids``; eval_split
is "train" too). Paper: 23-layer U-Net, 64 channels first level, dropout ending the
contracting path, one 572x572 tile per batch with mirrored context (overlap-tile), SGD
momentum 0.99, std sqrt(2/N) init, the border-weighted loss (fcnjax.data.weight_map: w0 = 10,
sigma = 5 px, w_c by median frequency of the training labels) and elastic deformations
(fcnjax.data.elastic: 3x3 grid, std 10 px, with rotation, shift, mirrors of both axes and
grey values). Not in the paper, chosen here: learning rate, steps, mean loss, no weight
decay, [-1, 1] input scaling, bilinear resampling, the rotation, shift and grey ranges.

Eval scores whole images (mirrored context, one pass). ``python -m fcnjax.predict --tta``
predicts tile by tile with the paper's 8-way test-time averaging. scripts/isbi_compare.py
trains this recipe without the pipeline, in fcnjax and PyTorch, and scores it with the
challenge's Rand and pixel errors after overlap-tile prediction and 8-way averaging.
"""

import ml_collections

from configs import default


def get_config():
    config = default.get_config()
    config.model = ml_collections.ConfigDict(dict(
        name="unet", num_classes=2, features=64, levels=4, padding="valid",
        upsampling="transpose", dropout=0.5, dtype="float32", norm="none", norm_groups=32,
        remat="none"))

    config.input.eval_split = "train"
    config.input.train_ids = "0-24"           # fixed split of the 30 labelled images:
    config.input.eval_ids = "25-29"           #   eval reads 25-29 of the train folder
    config.input.image_mode = "L"
    config.input.label_values = (0, 255)      # 0 membrane -> class 0, 255 cell -> class 1
    config.input.bgr = False
    config.input.mean = (127.5,)
    config.input.scale = 1 / 127.5
    config.input.mirror_pad = 92              # context the valid U-Net loses per side
    config.input.crop_size = (572, 572)       # one tile -> 388x388 scores
    config.input.eval_size = (700, 700)       # 512 + 2 * 92 mirrored, padded to a valid size
    config.input.flip = True                  # with elastic: mirrors of both axes
    config.input.border_weights = True        # batch["weight"] = weight_map.border_weights
    config.input.border_w0 = 10.0             # w0 of the border term
    config.input.border_sigma = 5.0           # sigma (pixels) of the border term
    config.input.class_balance = "median_frequency"  # w_c from the images 0-24
    config.input.elastic_std = 10.0           # px, std of the 3x3 grid displacements
    config.input.elastic_grid = 3             # coarse grid nodes per axis
    config.input.max_rotation = 180.0         # degrees, uniform in [-max, max]
    config.input.max_shift = 10.0             # pixels, uniform per axis
    config.input.contrast = 0.1               # grey values: image * U(1 -+ 0.1) ...
    config.input.brightness = 0.1             # ... + U(-+0.1) (on the [-1, 1] scale)
    config.input.resample_order = 1           # 1 bilinear (faster) or 3 cubic splines

    config.loss.reduction = "mean"
    config.optim.learning_rate = 0.001       # 0.01 collapsed to "all membrane" (RESULTS.md)
    config.optim.weight_decay = 0.0
    config.train.steps = 10_000
    config.train.log_every = 50
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 1_000
    config.eval.num_draw = 2
    config.eval.classes = "isbi2012"          # membrane, cell
    config.eval.isbi_challenge = True         # evaluate adds the challenge's scores
    return config
