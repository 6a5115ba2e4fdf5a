#!/usr/bin/env python
"""The main job: LOSO training of ICE-GAN and a recognizer on fixed SRFlowNet flow (see icegan/pipeline.py).

    python train.py                                  # built-in synthetic demo (configs/demo.yaml)
    python train.py --config configs/casme2.yaml     # real CASME II, SDE LOSO
    python train.py --config configs/megc2019.yaml   # three-dataset CDE; datasets under $ICEGAN_DATA (default data/)
    python train.py --config configs/megc2019.yaml data.prepare.datasets.1.root=/mnt/CASME2   # or one root (0 SMIC,
                                                     # 1 CASME II, 2 SAMM)
"""
import sys

from icegan.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
