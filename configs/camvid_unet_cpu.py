"""A small U-Net trained from scratch on CamVid shrunk to 120x160: a CPU-sized run.

    python scripts/camvid_folder.py ../shared/data/camvid .data/camvid_120x160 --downscale 3
    python -m fcnjax.train --config configs/camvid_unet_cpu.py --workdir /tmp/camvid_unet \
        --config.input.data_dir=.data/camvid_120x160

The sample's recipe (configs/sample.py: a "same" U-Net of 16 first-level channels and 4
levels, SGD with momentum 0.9, lr 0.05 on the mean loss, cosine schedule) on CamVid's 11
classes: whole 120x160 training images, batch 4, 600 steps (6.5 epochs), scored on
the 101 val images at the end. RESULTS.md's toolkit comparison
(``scripts/toolkit_study.sh``) starts every row from here.
"""

from configs import sample


def get_config():
    config = sample.get_config()
    config.model.num_classes = 11
    config.input.data_dir = ""                # the shrunk copy: see above
    config.input.image_mode = "RGB"
    config.input.label_values = tuple(range(11))  # ids 0..10 stored as such; 11 is void
    config.input.check_data = False           # ... which the data check would call a 12th class
    config.input.mean = (127.5, 127.5, 127.5)
    config.input.crop_size = (120, 160)
    config.input.eval_size = ()
    config.train.steps = 600
    config.train.log_every = 100
    config.train.eval_every = 600
    config.train.checkpoint_every = 600
    config.eval.classes = "camvid"
    config.eval.isbi_challenge = False
    return config
