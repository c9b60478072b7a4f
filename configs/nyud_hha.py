"""NYUDv2 HHA only: FCN-32s on the HHA encoding of depth, 40 classes (nyud-fcn32s-hha).

    python -m fcnjax.train --config configs/nyud_hha.py --workdir /tmp/nyud_hha \
        --config.input.tfds_data_dir=/data/tfds

Reads the prepared tfds ``nyud_v2/rgbd_hha`` dataset and feeds its ``hha`` image as the net's
image: channels as stored (no BGR swap) minus the reference's HHA mean, as nyud_layers.py
does. The published caffemodel converts with ``python -m fcnjax.zoo convert ... --model
nyud-fcn32s-hha``.
"""

from configs import nyud_color


def get_config():
    config = nyud_color.get_config()
    config.input.tfds_name = "nyud_v2/rgbd_hha"
    config.input.tfds_image_key = "hha"
    config.input.bgr = False                  # HHA channels are used as stored
    config.input.mean = (132.431, 94.076, 118.477)  # the reference's HHA mean
    return config
