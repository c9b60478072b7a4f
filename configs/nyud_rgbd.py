"""NYUDv2 early fusion (RGB-D): FCN-32s on a 4-channel BGR + depth input, 40 classes.

    python -m fcnjax.train --config configs/nyud_rgbd.py --workdir /tmp/nyud_rgbd \
        --config.input.tfds_data_dir=/data/tfds

Paper (Table 4): 61.5 pixel acc., 42.4 mean acc., 30.5 mean IU, 45.5 f.w. IU.
Reads the prepared tfds ``nyud_v2/rgbd`` dataset (``python -m fcnjax.data.prepare nyud_v2
--manual_dir <the FCN data/nyud folder>``; trains on trainval, scores test, as the
reference). The image is the colour image in BGR minus NYUDv2's mean, (116.190, 97.203,
92.318), with the depth appended as a fourth channel preprocessed as the reference's
nyud_layers.py does: log(depth) - 7.844 (its mean log-depth), no further scale; a 0
(unmeasured) depth reads as 1. The model takes the (H, W, 4) image (conv1_1 has 4 input
channels, so torchvision VGG16 weights do not fit it as they are).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "nyud_early_fusion"
    config.model.num_classes = 40
    config.eval.classes = "nyud40"
    config.input.source = "tfds"
    config.input.tfds_name = "nyud_v2/rgbd"
    config.input.train_split = "trainval"
    config.input.eval_split = "test"
    config.input.mean = (116.190, 97.203, 92.318)  # the reference's NYUDv2 BGR mean
    config.input.depth_key = "depth"          # image: BGR + (log depth - depth_mean)
    config.input.depth_mean = 7.844
    config.input.crop_size = (425, 560)       # NYUDv2's 640x480 frames, cropped to the labels
    config.input.eval_size = (425, 560)
    return config
