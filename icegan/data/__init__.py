"""Datasets and preprocessing.

Real datasets (CASME II, SAMM, SMIC-HS in their official layouts and sheets):

- :mod:`icegan.data.records` — :class:`~icegan.data.records.ClipRecord`, the common clip record.
- :mod:`icegan.data.sheets` — readers of the official annotation sheets (and their quirks).
- :mod:`icegan.data.composite` — MEGC2019 3-class composite rules, SDE label sets.
- :mod:`icegan.data.action_units` — the clips' FACS action units from the CASME II and SAMM sheets, as
  multi-hot targets (``model.au_weight``).
- :mod:`icegan.data.casme2`, :mod:`icegan.data.samm`, :mod:`icegan.data.smic` — one loader per dataset.
- :mod:`icegan.data.check` — disk-versus-sheet report (``icegan data check``).
- :mod:`icegan.data.landmarks`, :mod:`icegan.data.align`, :mod:`icegan.data.spotting` — face_recognition
  landmarks, one alignment per clip, SMIC apex spotting.
- :mod:`icegan.data.prepare` — ``prepare_dataset(cfg)`` / ``load_prepared(dir)``: the cached
  onset/apex/neighbour arrays (``icegan prepare``).

Submodules are imported on demand (OpenCV, dlib and pandas are not loaded by ``import icegan.data``).
"""
