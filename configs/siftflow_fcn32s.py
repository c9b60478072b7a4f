"""SIFT Flow FCN-32s: configs/siftflow_fcn16s.py with skips () (siftflow-fcn32s).

    python -m fcnjax.train --config configs/siftflow_fcn32s.py --workdir /tmp/siftflow_fcn32s \
        --config.input.tfds_data_dir=/data/tfds

The same multi-task net (heads "sem", 33 classes, and "geo", 3) and data as the FCN-16s
config; only the skips differ. The published caffemodel converts with
``python -m fcnjax.zoo convert ... --model siftflow-fcn32s``.
"""

from configs import siftflow_fcn16s


def get_config():
    config = siftflow_fcn16s.get_config()
    config.model.skips = ()
    return config
