"""PASCAL-Context FCN-16s: configs/pascalcontext_fcn32s.py with the FCN-16s net (pascalcontext-fcn16s).

    python -m fcnjax.train --config configs/pascalcontext_fcn16s.py --workdir /tmp/pc16s \
        --config.input.tfds_data_dir=/data/tfds

The same 60 score channels (59 classes + background) and data as the FCN-32s config; the
published caffemodel converts with ``python -m fcnjax.zoo convert ... --model
pascalcontext-fcn16s``.
"""

from configs import pascalcontext_fcn32s


def get_config():
    config = pascalcontext_fcn32s.get_config()
    config.model.name = "fcn16s"
    return config
