"""SIFT Flow FCN-16s: one VGG16 trunk, a semantic (33 classes) and a geometric (3) head.

    python -m fcnjax.train --config configs/siftflow_fcn16s.py --workdir /tmp/siftflow \
        --config.input.data_dir=/data/siftflow_folder

Paper (Table 5): 85.2 pixel acc., 51.7 mean acc., 39.5 mean IU, 76.1 f.w. IU, geometric
accuracy 94.3; the two heads' losses are summed. Not trainable yet: the model returns
{"sem": ..., "geo": ...} and needs two label maps, while the pipeline gives one ``label``
and the train step scores one logits array; missing are a source with both labels and a
loss summing the heads. The config loads and builds the model (``predict`` uses "sem").
"""

import ml_collections

from configs import default


def get_config():
    config = default.get_config()
    config.model = ml_collections.ConfigDict(dict(
        name="siftflow_fcn16s", learnable_upsampling=False, dtype="float32"))
    config.eval.classes = "siftflow"
    config.input.crop_size = (256, 256)       # SIFT Flow images are 256x256
    config.input.eval_size = (256, 256)
    config.optim.learning_rate = 1e-12
    return config
