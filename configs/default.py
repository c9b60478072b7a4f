"""Every config field, set to the FCN reference's recipe (VGG16 FCN-32s on PASCAL VOC).

    python -m fcnjax.train --config configs/default.py --workdir /tmp/fcn32s \
        --config.input.data_dir=/data/voc_folder

Experiments (fcn32s.py, unet_isbi.py, sample.py, ...) start from ``get_config()`` here and
override only what differs. Needs nothing but ml_collections to import.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Root of every random choice: init and dropout keys, and the data shuffle and crops.
    # 1337 is the reference's shuffle seed.
    config.seed = 1337
    # PRNG of the init and dropout keys: "threefry2x32" (JAX's default, the same numbers on
    # every backend) or "rbg" (XLA's generator: much faster to compile on CPU).
    config.prng_impl = "threefry2x32"
    # JAX's persistent compilation cache for the command lines (fcnjax.run.compile_cache): a rerun
    # of the same program skips its compile. "auto": $JAX_COMPILATION_CACHE_DIR, else
    # $XDG_CACHE_HOME/fcnjax/jax (~/.cache/fcnjax/jax); a folder; "": off.
    config.compile_cache = "auto"

    # Keyword arguments of fcnjax.models.build: "name" picks the constructor in
    # fcnjax.models.MODELS, the rest go to it (they differ between FCNs and U-Net).
    config.model = ml_collections.ConfigDict()
    config.model.name = "fcn32s"
    config.model.num_classes = 21             # PASCAL VOC: 20 classes + background
    config.model.learnable_upsampling = False  # the reference keeps bilinear upscore fixed
    config.model.dtype = "float32"            # compute dtype; params stay float32
    # Normalisation after each conv, before its ReLU, for training from scratch
    # (fcnjax.models.norm): "none" (the papers'), "batch" (running statistics kept in the
    # train state and checkpoints) or "group". U-Net and every FCN trunk; a config.init
    # weight source needs "none".
    config.model.norm = "none"
    config.model.norm_groups = 32             # "group": the largest divisor of a conv's
                                              # channels not above this (64 -> 32, 48 -> 24)
    # Rematerialisation (fcnjax.models.remat): recompute activations in the backward pass to
    # save memory: "none", "stages" (keep each trunk stage's / U-Net level's output) or
    # "full" (keep each layer's output). Same parameters and results.
    config.model.remat = "none"

    config.init = ml_collections.ConfigDict()  # where the weights start (at most one set)
    config.init.checkpoint = ""               # workdir of an earlier stage (16s from 32s): copy
                                              # what matches, new score layers start at zero
    config.init.torchvision_vgg16 = ""        # torchvision VGG16 .pth: conv1_1 ... fc7
    config.init.caffe_vgg16 = ""              # the reference's VGG_ILSVRC_16_layers.caffemodel
    config.init.pytorch_fcn = ""              # pytorch-fcn FCN32s/16s/8s/8sAtOnce .pth: everything

    config.input = ml_collections.ConfigDict()
    config.input.source = "folder"            # fcnjax.data.pipeline.SOURCES: "folder" or "tfds"
    # source "tfds": a dataset prepared by `python -m fcnjax.data.prepare` (or from the TFDS
    # catalog, e.g. "oxford_iiit_pet"), read with tfds.data_source; data_dir is then unused.
    config.input.tfds_name = ""               # e.g. "camvid", "voc_segmentation/2011"
    config.input.tfds_data_dir = ""           # tfds data_dir; empty: tfds' default
    config.input.tfds_image_key = "image"     # feature read as the image
    config.input.tfds_label_key = "label"     # feature read as the label ("segmentation_mask": pets)
    # Dataset root (fcnjax.data.image_folder): images/<name>.<ext> + masks/<name>.<png|tif>
    # [+ splits/<split>.txt; none: all "train"], or <split>/image/ + <split>/label/ per split.
    config.input.data_dir = ""
    config.input.train_split = "train"
    config.input.eval_split = "val"
    config.input.image_dir = ""               # image folder name; "": images/ or image/ (found)
    config.input.label_dir = ""               # mask folder name; "": masks/, labels/, mask/, label/
    # Keep only these examples of the training / eval split: ids and ranges like "0-24" or
    # "25,26,27" matching the image names (folder file stems, the tfds "name" feature), or
    # indices for sources without names; empty: all. eval_ids applies to eval_split (also
    # when it is the training split: ISBI's 0-24 / 25-29).
    config.input.train_ids = ""
    config.input.eval_ids = ""
    config.input.image_mode = "RGB"           # "RGB" (3 channels) or "L" (grayscale, 1)
    # Stored label value of each class (class i is stored as label_values[i]; other values are
    # void). Empty: the label PNGs already hold class ids, 255 = void (VOC).
    config.input.label_values = ()
    config.input.bgr = True                   # Caffe order: RGB -> BGR before the mean
    config.input.mean = (104.00699, 116.66877, 122.67892)  # subtracted, per channel (BGR)
    config.input.scale = 1.0                  # multiplies (image - mean); the reference: none
    # More features of a "tfds" source (fcnjax.data.pipeline.extra_keys), all cropped,
    # padded and flipped with the image. depth_key: a depth feature appended to the image as
    # one more channel, log(depth) - depth_mean (NYUDv2 early fusion, "depth"); "": none.
    config.input.depth_key = ""
    config.input.depth_mean = 7.844           # the reference's NYUDv2 mean log-depth
    # Features passed to the model as inputs of their own (batch keys; the model then gets
    # {"image": ..., key: ...}), each normalised as (pixels - its extra_means entry) * scale,
    # channels as stored (no BGR swap): NYUDv2 late fusion's ("hha",).
    config.input.extra_inputs = ()
    config.input.extra_means = ()             # one per-channel mean tuple per extra input
    # Label maps of further heads (names end in "_label"): head "geo" of a multi-output model
    # is scored against "geo_label" (SIFT Flow); the remaining head against "label".
    config.input.extra_labels = ()
    # Mirror this many pixels around every image (label void) before cropping: U-Net's
    # overlap-tile context, so a valid-padding net predicts the image's border pixels too.
    config.input.mirror_pad = 0
    # Training examples are random crops of this (H, W); smaller images are padded (label
    # void). 500x500 holds every VOC image whole: the reference's whole-image training.
    config.input.crop_size = (500, 500)
    # Eval images are padded to this canvas (label void) so every batch has one shape;
    # empty: whole images at their own size (one compile per size).
    config.input.eval_size = (500, 500)
    config.input.flip = False                 # random left-right mirror (the reference: none)
    # Training images are resized by a factor drawn from (lo, hi) before the crop, e.g.
    # (0.5, 2.0); empty: no scaling (the reference).
    config.input.scale_range = ()
    # Photometric jitter (brightness, contrast, saturation): each a factor drawn from
    # [1 - s, 1 + s], e.g. (0.2, 0.2, 0.2); empty: none (the reference).
    config.input.jitter = ()
    # U-Net's loss weight map (fcnjax.data.weight_map): training batches carry batch["weight"] =
    # w_c + w0 exp(-(d1 + d2)^2 / 2 sigma^2) from each label (cells: class 1), 0 on void and
    # on mirrored / padded pixels. False: no weight map (the reference).
    config.input.border_weights = False
    config.input.border_w0 = 10.0             # w0 of the border term (the paper: 10)
    config.input.border_sigma = 5.0           # sigma of the border term, pixels (the paper: 5)
    # w_c of the weight map: "median_frequency" (from the training split's class counts,
    # counted once) or "" (w_c = 1).
    config.input.class_balance = ""
    # U-Net's augmentation of each training crop (fcnjax.data.elastic), on when any of
    # elastic_std, max_rotation, max_shift, contrast, brightness is set; flip then mirrors
    # both axes inside it. Image, label and weight are resampled alike (label: nearest).
    config.input.elastic_std = 0.0            # pixels, std of the coarse grid displacements
    config.input.elastic_grid = 3             # grid nodes per axis (the paper: 3 x 3)
    config.input.max_rotation = 0.0           # degrees, angle uniform in [-max, max]
    config.input.max_shift = 0.0              # pixels, shift uniform in [-max, max] per axis
    config.input.contrast = 0.0               # grey values: image * U(1 - c, 1 + c) ...
    config.input.brightness = 0.0             # ... + U(-b, b), on the normalised scale
    config.input.resample_order = 1           # spline order of image and weight: 1 or 3
    # Where that augmentation runs: "host" (the input pipeline's CPU workers) or "device"
    # (drawn on the host, applied inside the jitted train step: fcnjax.data.device_elastic;
    # bilinear only). A GPU step outruns the host's ~30 examples/s per core.
    config.input.augment_on = "host"
    # Eval batches of different-sized images are padded to their largest (label void) when
    # eval_size is empty; False: such a batch is an error.
    config.input.pad_batches = False
    # Before training, survey a bounded sample of the training labels and stop on data that
    # cannot train the model (one class, mostly void, a class never seen, stored values the
    # label mapping drops): fcnjax.data.checks. False trains anyway.
    config.input.check_data = True
    config.input.read_threads = 2             # grain threads reading ahead (per worker)
    config.input.workers = 0                  # grain worker processes decoding; 0: in this one

    config.loss = ml_collections.ConfigDict()
    # "sum": the reference's unnormalized per-pixel loss (normalize: false); "mean": divided
    # by the labelled pixels, which needs a learning rate about pixels-per-batch times higher.
    config.loss.reduction = "sum"
    # Deprecated (one release): void is always 255 (fcnjax.data.classes.VOID), in the files,
    # the pipeline's padding, the loss and the metrics; map other stored values to classes
    # or void with input.label_values. Any other value is refused.
    config.loss.ignore_label = 255
    # Per-class loss weights: a tuple, one per class; "median_frequency", median(f) / f_c
    # from the training split's class counts (counted once at startup); () = none.
    config.loss.class_weights = ml_collections.FieldReference((), field_type=object)
    # Loss sampling (the paper's patch sampling): keep each labelled pixel in the loss with
    # this probability, drawn anew every step; 1.0 = whole-image training (the reference).
    config.loss.keep_prob = 1.0
    # The loss: a weighted sum of (name, weight) terms (fcnjax.loss_terms): "xent" (the
    # papers' per-pixel cross-entropy), "focal" (Lin et al.), "dice" (soft Dice, Milletari
    # et al.), "lovasz" (Lovász-softmax, Berman et al.), e.g. (("xent", 1.0), ("dice", 1.0)).
    # xent and focal follow loss.reduction; dice and lovasz are means over the classes present
    # (and images), in [0, 1], whatever it says. Every term skips void pixels and follows
    # keep_prob and class_weights; all but lovasz use the border weight map. What a term
    # ignores is said in one line before training.
    config.loss.terms = (("xent", 1.0),)
    config.loss.focal_gamma = 2.0             # focal's (1 - p_t)^gamma; 0: the cross-entropy
    # focal's alpha_t for two classes: alpha for class 1, 1 - alpha for class 0 (the paper's
    # 0.25); negative: none (more classes: loss.class_weights).
    config.loss.focal_alpha = -1.0
    config.loss.dice_smooth = 1.0             # added to Dice's numerator and denominator
    # Dice's denominator: True, sum p^2 + sum g^2 (Milletari et al.); False, sum p + sum g.
    config.loss.dice_squared = False
    config.loss.dice_per_image = False        # Dice of each image, averaged; False: of the batch
    config.loss.lovasz_per_image = False      # Lovász of each image, averaged; False: the batch's

    config.optim = ml_collections.ConfigDict()
    # "sgd" (the reference's: momentum, L2 weight decay), "adamw" (decoupled weight decay) or
    # any optax optimizer taking a learning rate (fcnjax.optim.optimizer_names), each with the
    # parameter groups below (bias lr and decay multipliers, trainable), the schedule and
    # accumulate; momentum is sgd's alone, the others keep optax's defaults.
    config.optim.name = "sgd"
    config.optim.learning_rate = 1e-10        # FCN-32s; 1e-12 FCN-16s, 1e-14 FCN-8s (sum loss)
    config.optim.schedule = "constant"        # "constant" (the paper), "cosine" or "poly"
    config.optim.warmup_steps = 0             # linear warmup from 0 over this many updates
    config.optim.momentum = 0.99
    config.optim.weight_decay = 5e-4
    config.optim.bias_lr_mult = 2.0           # Caffe lr_mult of biases
    config.optim.bias_decay_mult = 0.0        # Caffe decay_mult of biases
    # Deprecated (one release; True prints a line): model.learnable_upsampling alone decides
    # whether upscore* kernels exist and learn.
    config.optim.train_upscore = False
    # Comma-separated name prefixes of the only layers that learn ("" = all): "score" trains
    # just the score layers, the paper's FCN-32s-fixed.
    config.optim.trainable = ""
    config.optim.accumulate = 1               # average gradients of k steps per update (iter_size)
    # Exponential moving average of the weights, moved after every update: ema = decay * ema
    # + (1 - decay) * params, starting at the initial weights (no debiasing); checkpointed
    # with the run. 0.0: off (nothing kept); e.g. 0.999 (about the last 1000 updates).
    config.optim.ema_decay = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.steps = 100_000              # optimizer calls (micro-batches if accumulate > 1)
    config.train.batch_size = 1               # the reference: one whole image
    config.train.log_every = 20               # train loss and metrics to metrics.jsonl
    config.train.eval_every = 4_000           # evaluate the eval split (and at the end)
    config.train.checkpoint_every = 4_000     # save to <workdir>/checkpoints (and at the end)
    config.train.max_to_keep = 3              # checkpoints kept
    # Also keep the best evaluated state by mean IU in <workdir>/best (only saved on a gain).
    config.train.keep_best = True
    # Resume although the workdir's config.json (its earlier run's) differs in more than
    # fcnjax.run.workdir.RESUMABLE_FIELDS (steps, log / eval / checkpoint cadence, readers).
    config.train.allow_config_change = False

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 1                # images, or windows / tiles per forward pass
    # How evaluate, predict and the evaluation during training run the model on an image
    # (fcnjax.inference.image_forward): "whole" (the whole image in one pass, one compile per
    # image size; a valid U-Net tile by tile, tiles of input.crop_size) or "slide" (fixed
    # windows, eval.batch_size a pass: one compile for every image size, the network's
    # memory bounded by the window; the image border mirrored for U-Nets, zero-padded and
    # dropped for FCNs; a valid U-Net: exact overlap-tile with tiles of eval.window).
    config.eval.mode = "whole"
    config.eval.window = ()                   # slide: (height, width); (): input.crop_size
    # slide: (dy, dx) between windows, at most the window; (): two thirds of the window.
    # A valid U-Net's tiles abut at a step fixed by its geometry: () (or that step).
    config.eval.stride = ()
    # slide: weights where windows overlap, "constant" (the mean of the windows) or
    # "gaussian" (each window's centre counts more than its rim; sigma = 1/8 of the window).
    config.eval.blend = "constant"
    # Test-time augmentation in evaluate, predict and the evaluation during training, in
    # either mode: the class probabilities averaged at the image's size over these scales
    # (e.g. (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)) and, with flip, left-right mirrors: that many
    # times the work. (1.0,) and False: plain prediction. predict --tta: 8 rotations and mirrors.
    config.eval.scales = (1.0,)
    config.eval.flip = False
    # Weights that evaluate, predict and the evaluation during training (hence best/) use:
    # "raw" (the trained params), "ema" (their moving average, optim.ema_decay) or "auto"
    # ("ema" when optim.ema_decay > 0, else "raw").
    config.eval.weights = "auto"
    config.eval.num_draw = 4                  # eval images drawn in predictions_<step>.png
    # Class names and colours in tables, grids and predict's masks: "voc", "camvid",
    # "isbi2012", "nyud40", "siftflow" (fcnjax.data.classes.CLASS_SETS); a prepared
    # dataset's own names win.
    config.eval.classes = "voc"
    # The ISBI 2012 challenge's scores (V_Rand, V_Info, Rand and pixel errors) beside the
    # paper's table in evaluate: 2 classes, membrane 0, cell 1. (Deprecated, this release
    # only: eval.classes or the tfds dataset "isbi2012" still turns them on, with a line.)
    config.eval.isbi_challenge = False

    # Devices (fcnjax.run.parallel): data parallel over a mesh of every device of every process.
    # config.train.batch_size and config.eval.batch_size are GLOBAL batches: the train batch
    # must be a multiple of the devices; each process reads batch_size / process_count
    # examples a step (eval batches are padded with void examples instead).
    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1                     # devices on the data axis; -1: all of them
    config.mesh.shard_params = False          # split big params + optimizer state (FSDP-style)
    config.mesh.min_shard_size = 2 ** 18      # smallest array (elements) shard_params splits
    # Multi-host: True lets jax.distributed find the cluster (SLURM, Open MPI, Kubernetes,
    # Cloud TPU); False reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID
    # (none set: one process on its local devices).
    config.mesh.cluster_detect = False
    return config
