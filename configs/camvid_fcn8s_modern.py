"""FCN-8s on CamVid with a modern recipe: poly schedule with warmup, augmentation, bfloat16.

    python -m fcnjax.data.prepare camvid --manual_dir /data/CamVid
    python -m fcnjax.train --config configs/camvid_fcn8s_modern.py \
        --workdir /tmp/camvid_fcn8s_modern \
        --config.init.torchvision_vgg16=/weights/vgg16-397923af.pth

What changes from configs/camvid_fcn8s.py (the paper's recipe): batches of 8 random
352x480 crops of images rescaled by 0.5-2x, flipped and colour-jittered; momentum 0.9, lr
0.01 with a 500-step linear warmup then poly decay; learnable upsampling; bfloat16 compute
(parameters and loss stay float32). Not tuned yet: a starting point, not a reproduced score.
"""

from configs import camvid_fcn8s


def get_config():
    config = camvid_fcn8s.get_config()
    config.model.learnable_upsampling = True
    config.model.dtype = "bfloat16"

    config.input.crop_size = (352, 480)
    config.input.scale_range = (0.5, 2.0)
    config.input.flip = True
    config.input.jitter = (0.2, 0.2, 0.2)

    config.optim.learning_rate = 0.01
    config.optim.momentum = 0.9
    config.optim.schedule = "poly"
    config.optim.warmup_steps = 500
    config.train.batch_size = 8
    config.train.steps = 20_000
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 1_000
    return config
