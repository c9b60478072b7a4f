"""NYUDv2 colour only: FCN-32s on the BGR image, 40 classes (the reference's nyud-fcn32s-color).

    python -m fcnjax.train --config configs/nyud_color.py --workdir /tmp/nyud_color \
        --config.input.tfds_data_dir=/data/tfds

Reads the prepared tfds ``nyud_v2/rgbd`` dataset (trains on trainval, scores test) and uses
only its colour image, in BGR minus the reference's NYUDv2 mean. The published caffemodel
converts with ``python -m fcnjax.zoo convert ... --model nyud-fcn32s-color``.
"""

from configs import nyud_rgbd


def get_config():
    config = nyud_rgbd.get_config()  # the same data, crops and mean, without the depth channel
    config.model.name = "fcn32s"
    config.input.depth_key = ""
    return config
