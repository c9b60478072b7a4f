"""Foreign weight files as fcnjax params.

:mod:`fcnjax.weights.caffe` reads Caffe ``.caffemodel`` files (no Caffe needed, nothing
executed) and converts the FCN reference's nets and the ImageNet VGG16 into fcnjax param
trees; :mod:`fcnjax.weights.zoo` lists every net the reference published and loads or
converts each into a checkpoint (``python -m fcnjax.zoo``). PyTorch weights are
:mod:`fcnjax.surgery`'s.
"""
