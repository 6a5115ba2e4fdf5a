"""icegan: generative data augmentation and honest LOSO benchmarking for micro-expression recognition.

Sub-packages: ``icegan.data`` (dataset loaders, preprocessing), ``icegan.models`` (ICE-GAN generator,
graph reasoning module, capsule discriminator, recognizers). Modules: ``icegan.config`` (typed YAML
configs), ``icegan.metrics`` (UF1/UAR and friends), ``icegan.protocol`` (LOSO and leave-one-dataset-out folds and runs),
``icegan.cli`` (the ``icegan`` command). Optical flow lives in the separate package ``flownet``.
"""
__version__ = "0.1.0"
