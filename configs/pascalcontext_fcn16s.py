"""PASCAL-Context FCN-16s: VGG16 FCN-16s with 60 score channels (59 classes + background).

    python -m fcnjax.train --config configs/pascalcontext_fcn16s.py --workdir /tmp/pc16s \
        --config.input.data_dir=/data/pascal_context_folder

The reference (pascalcontext-fcn16s) scores the 59 most frequent PASCAL-Context classes on
VOC2010 images, label 0 for everything else, so its nets have 60 outputs. fcnjax has no
PASCAL-Context builder yet: give a folder dataset (images/ + masks/ holding those 0..59 ids,
255 void, + splits/) through input.data_dir. The published caffemodel converts with
``python -m fcnjax.zoo convert ... --model pascalcontext-fcn16s``.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model.name = "fcn16s"
    config.model.num_classes = 60
    # Placeholder: fcnjax.visualize has no PASCAL-Context names yet, so tables show VOC's
    # names for ids below 21 and "class <i>" above.
    config.eval.classes = "voc"
    return config
