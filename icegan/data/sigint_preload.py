"""Imported first by the preprocessing forkserver of a job that needs no face model (:func:`icegan.data.prepare.
worker_context` with ``face_models=False``: cropped clips that all have their apex): makes the server ignore Ctrl-C
(the parent stops the pool; the workers forked from the server inherit that), as
:mod:`icegan.data.face_models_preload` does before it loads the face_recognition models."""
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
