"""Foreign weight files as fcnjax params.

:mod:`fcnjax.weights.layouts` holds what every file shares (its error, OIHW <-> HWIO, the
one report of layers that do not fit, the one bilinear-kernel check);
:mod:`fcnjax.weights.pytorch` reads ``.pth`` files safely; :mod:`fcnjax.weights.surgery`
converts PyTorch state dicts (torchvision VGG16, pytorch-fcn) and moves params between
stages (``stage_init``); :mod:`fcnjax.weights.caffe` reads Caffe
``.caffemodel`` files (no Caffe needed, nothing executed); :mod:`fcnjax.weights.zoo` lists
every net the FCN reference published and loads or converts each into a checkpoint
(``python -m fcnjax.zoo``); :mod:`fcnjax.weights.sources` turns ``config.init`` into params.
"""
