"""``python -m icegan``: the ``icegan`` command (:func:`icegan.cli.main`), for an environment whose scripts folder is
not on PATH, and for launchers that take a module (``torchrun --nproc_per_node 2 -m icegan train ...``)."""
import sys

from icegan.cli import main

sys.exit(main())
