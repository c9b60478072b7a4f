"""NYUDv2 early fusion (RGB-D): FCN-32s on a 4-channel BGR + depth input, 40 classes.

    python -m fcnjax.train --config configs/nyud_rgbd.py --workdir /tmp/nyud_rgbd \
        --config.input.data_dir=/data/nyud_folder

Paper (Table 4): 61.5 pixel acc., 42.4 mean acc., 30.5 mean IU, 45.5 f.w. IU.
Not trainable yet: the input pipeline reads "RGB" or "L" images, and this model needs a
fourth (depth) channel; a source giving (H, W, 4) BGR+D images is what is missing. The
config loads and builds the model (on 3 channels until then).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "nyud_early_fusion"
    config.model.num_classes = 40
    config.eval.classes = "nyud40"
    config.input.crop_size = (425, 560)       # NYUDv2's 640x480 frames, cropped to the labels
    config.input.eval_size = (425, 560)
    return config
