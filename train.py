#!/usr/bin/env python
"""The main job: joint LOSO training of ICE-GAN, SRFlowNet and a recognizer (see icegan/pipeline.py).

    python train.py                                  # built-in synthetic demo (configs/demo.yaml)
    python train.py --config configs/casme2.yaml     # real CASME II, SDE LOSO
    python train.py --config configs/megc2019.yaml data.prepare.datasets[...]  # three-dataset CDE
"""
import sys

from icegan.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
