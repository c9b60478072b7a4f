"""FCN-8s at-once on CamVid (SegNet's 11-class 360x480 version), the FCN paper's recipe.

    python -m fcnjax.data.prepare camvid --manual_dir /data/CamVid
    python -m fcnjax.train --config configs/camvid_fcn8s.py --workdir /tmp/camvid_fcn8s \
        --config.init.torchvision_vgg16=/weights/vgg16-397923af.pth

Reads the prepared tfds ``camvid`` dataset (``input.tfds_data_dir``: where it was
prepared; tfds' default if empty), whose labels hold class ids 0..10 with class 11
(Unlabelled) stored as void 255. Whole 360x480 images, batch 1, no augmentation, momentum
0.99 and fixed bilinear upsampling as the reference; the loss is averaged over the labelled
pixels with lr 1e-5 (about the reference's 1e-10 per pixel times 172,800 pixels); val is
scored and checkpointed every 3,670 steps (10 epochs). For SegNet's median-frequency class
balancing set ``--config.loss.class_weights`` to ``MEDIAN_FREQUENCY`` below. The weights
start from torchvision's VGG16, so inputs use torchvision's preprocessing (RGB, /255,
ImageNet mean and std); from Caffe weights, set ``input.bgr``, ``mean``, ``scale`` back.
"""

from configs import default

MEDIAN_FREQUENCY = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823,
                    6.2478, 7.3614)
"""SegNet's median-frequency class weights of CamVid's train split (classes 0..10)."""


def get_config():
    config = default.get_config()
    config.model.name = "fcn8s_atonce"
    config.model.num_classes = 11
    config.eval.classes = "camvid"

    config.input.source = "tfds"
    config.input.tfds_name = "camvid"
    config.input.bgr = False
    config.input.mean = (123.675, 116.28, 103.53)   # ImageNet's, in 0-255 RGB ...
    config.input.scale = 1 / 58.395                 # ... and about 1 / its std
    config.input.crop_size = (360, 480)
    config.input.eval_size = (360, 480)

    config.loss.reduction = "mean"
    config.optim.learning_rate = 1e-5
    config.train.steps = 36_700                 # 100 epochs of 367 images
    config.train.eval_every = 3_670
    config.train.checkpoint_every = 3_670
    return config
