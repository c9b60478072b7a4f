"""PASCAL-Context FCN-32s: VGG16 FCN-32s with 60 score channels (59 classes + background).

    python -m fcnjax.data.prepare pascal_context --manual_dir /data/pascal_context \
        --data_dir /data/tfds
    python -m fcnjax.train --config configs/pascalcontext_fcn32s.py --workdir /tmp/pc32s \
        --config.input.tfds_data_dir=/data/tfds

The reference (pascalcontext-fcn32s) scores the 59 most frequent PASCAL-Context classes on
VOC2010 images, label 0 for everything else, so its nets have 60 outputs. This reads the
prepared tfds ``pascal_context`` dataset (fcnjax.data.builders.pascal_context: VOC2010
JPEGImages with PASCAL-Context's trainval/*.mat mapped to those 60 ids), training on train
and scoring val as the reference does. The published caffemodel converts with
``python -m fcnjax.zoo convert ... --model pascalcontext-fcn32s``.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn32s"
    config.model.num_classes = 60
    config.eval.classes = "pascal_context"
    config.input.source = "tfds"
    config.input.tfds_name = "pascal_context"
    return config
