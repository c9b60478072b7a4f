"""PASCAL-Context FCN-8s: configs/pascalcontext_fcn32s.py with the FCN-8s net (pascalcontext-fcn8s).

    python -m fcnjax.train --config configs/pascalcontext_fcn8s.py --workdir /tmp/pc8s \
        --config.input.tfds_data_dir=/data/tfds

The same 60 score channels (59 classes + background) and data as the FCN-32s config; the
published caffemodel converts with ``python -m fcnjax.zoo convert ... --model
pascalcontext-fcn8s``.
"""

from configs import pascalcontext_fcn32s


def get_config():
    config = pascalcontext_fcn32s.get_config()
    config.model.name = "fcn8s"
    return config
