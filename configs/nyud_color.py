"""NYUDv2 colour only: FCN-32s on the BGR image, 40 classes (the reference's nyud-fcn32s-color).

    python -m fcnjax.train --config configs/nyud_color.py --workdir /tmp/nyud_color \
        --config.input.tfds_data_dir=/data/tfds

Reads the prepared tfds ``nyud_v2/rgbd`` dataset (trains on trainval, scores test) and uses
only its colour image, in BGR minus the reference's NYUDv2 mean. The published caffemodel
converts with ``python -m fcnjax.zoo convert ... --model nyud-fcn32s-color``.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn32s"
    config.model.num_classes = 40
    config.eval.classes = "nyud40"
    config.input.source = "tfds"
    config.input.tfds_name = "nyud_v2/rgbd"
    config.input.train_split = "trainval"
    config.input.eval_split = "test"
    config.input.mean = (116.190, 97.203, 92.318)  # the reference's NYUDv2 BGR mean
    config.input.crop_size = (425, 560)
    config.input.eval_size = (425, 560)
    return config
