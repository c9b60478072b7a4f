"""SIFT Flow FCN-8s: configs/siftflow_fcn16s.py with skips ("pool4", "pool3") (siftflow-fcn8s).

    python -m fcnjax.train --config configs/siftflow_fcn8s.py --workdir /tmp/siftflow_fcn8s \
        --config.input.tfds_data_dir=/data/tfds

The same multi-task net (heads "sem", 33 classes, and "geo", 3) and data as the FCN-16s
config; only the skips differ. The published caffemodel converts with
``python -m fcnjax.zoo convert ... --model siftflow-fcn8s``.
"""

from configs import siftflow_fcn16s


def get_config():
    config = siftflow_fcn16s.get_config()
    config.model.skips = ("pool4", "pool3")
    return config
