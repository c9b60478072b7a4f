"""NYUDv2 late fusion (RGB-HHA): colour and HHA VGG16 streams, scores summed 0.5 / 0.5.

    python -m fcnjax.train --config configs/nyud_rgbhha.py --workdir /tmp/nyud_rgbhha \
        --config.input.tfds_data_dir=/data/tfds

Paper (Table 4): FCN-32s RGB-HHA 64.3 pixel acc., 44.9 mean acc., 32.8 mean IU, 48.0 f.w.
IU. Reads the prepared tfds ``nyud_v2/rgbd_hha`` dataset (trains on trainval, scores test).
Batches carry ``image`` (colour, BGR minus NYUDv2's mean), ``hha`` (the HHA image in its
stored channel order minus the reference's HHA mean, (132.431, 94.076, 118.477), as
nyud_layers.py does) and ``label``; ``extra_inputs`` hands the model ``{"image": ...,
"hha": ...}``, so its streams are named ``image`` (colour) and ``hha``.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "nyud_late_fusion"
    config.model.num_classes = 40
    config.model.streams = ("image", "hha")   # the batch keys the streams read
    config.eval.classes = "nyud40"
    config.input.source = "tfds"
    config.input.tfds_name = "nyud_v2/rgbd_hha"
    config.input.train_split = "trainval"
    config.input.eval_split = "test"
    config.input.mean = (116.190, 97.203, 92.318)  # the reference's NYUDv2 BGR mean
    config.input.extra_inputs = ("hha",)
    config.input.extra_means = ((132.431, 94.076, 118.477),)
    config.input.crop_size = (425, 560)
    config.input.eval_size = (425, 560)
    return config
