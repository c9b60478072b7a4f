"""NYUDv2 HHA only: FCN-32s on the HHA encoding of depth, 40 classes (nyud-fcn32s-hha).

    python -m fcnjax.train --config configs/nyud_hha.py --workdir /tmp/nyud_hha \
        --config.input.tfds_data_dir=/data/tfds

Reads the prepared tfds ``nyud_v2/rgbd_hha`` dataset and feeds its ``hha`` image as the net's
image: channels as stored (no BGR swap) minus the reference's HHA mean, as nyud_layers.py
does. The published caffemodel converts with ``python -m fcnjax.zoo convert ... --model
nyud-fcn32s-hha``.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn32s"
    config.model.num_classes = 40
    config.eval.classes = "nyud40"
    config.input.source = "tfds"
    config.input.tfds_name = "nyud_v2/rgbd_hha"
    config.input.tfds_image_key = "hha"
    config.input.train_split = "trainval"
    config.input.eval_split = "test"
    config.input.bgr = False                  # HHA channels are used as stored
    config.input.mean = (132.431, 94.076, 118.477)  # the reference's HHA mean
    config.input.crop_size = (425, 560)
    config.input.eval_size = (425, 560)
    return config
