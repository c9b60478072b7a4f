"""SIFT Flow FCN-16s: one VGG16 trunk, a semantic (33 classes) and a geometric (3) head.

    python -m fcnjax.train --config configs/siftflow_fcn16s.py --workdir /tmp/siftflow \
        --config.input.tfds_data_dir=/data/tfds

Paper (Table 5): 85.2 pixel acc., 51.7 mean acc., 39.5 mean IU, 76.1 f.w. IU, geometric
accuracy 94.3. Reads the prepared tfds ``sift_flow`` dataset (trainval / test); batches
carry ``label`` (semantic) and ``geo_label`` (``extra_labels``). The model returns
{"sem": ..., "geo": ...}: "geo" is scored against ``geo_label``, "sem" against ``label``,
and the loss is the sum of the two (unnormalised, as the reference). metrics.jsonl holds the
semantic scores as mean_iu etc. and the geometric ones as geo_pixel_acc, geo_mean_iu, ...
Colour is BGR minus the reference's SIFT Flow mean (114.578, 115.294, 108.353).
"""

import ml_collections

from configs import default


def get_config():
    config = default.get_config()
    config.model = ml_collections.ConfigDict(dict(
        name="siftflow_fcn16s", num_classes=33, learnable_upsampling=False, dtype="float32",
        norm="none", norm_groups=32, remat="none"))
    config.eval.classes = "siftflow"
    config.input.source = "tfds"
    config.input.tfds_name = "sift_flow"
    config.input.train_split = "trainval"
    config.input.eval_split = "test"
    config.input.mean = (114.578, 115.294, 108.353)  # the reference's SIFT Flow BGR mean
    config.input.extra_labels = ("geo_label",)
    config.input.crop_size = (256, 256)       # SIFT Flow images are 256x256
    config.input.eval_size = (256, 256)
    config.optim.learning_rate = 1e-12
    return config
