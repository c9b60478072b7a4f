"""NYUDv2 late fusion (RGB-HHA): colour and HHA VGG16 streams, scores summed 0.5 / 0.5.

    python -m fcnjax.train --config configs/nyud_rgbhha.py --workdir /tmp/nyud_rgbhha \
        --config.input.data_dir=/data/nyud_folder

Paper (Table 4): FCN-32s RGB-HHA 64.3 pixel acc., 44.9 mean acc., 32.8 mean IU, 48.0 f.w.
IU. Not trainable yet: the model takes two images, {"color": ..., "hha": ...}, while the
input pipeline and train step pass one ``image``; missing are a source yielding both and a
train step feeding the mapping to the model. The config loads and builds the model.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "nyud_late_fusion"
    config.model.num_classes = 40
    config.eval.classes = "nyud40"
    config.input.crop_size = (425, 560)
    config.input.eval_size = (425, 560)
    return config
