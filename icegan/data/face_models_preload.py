"""Imported by the preprocessing forkserver (:func:`icegan.data.prepare.worker_context`): loads the face_recognition
models once, without face_recognition_models' pkg_resources deprecation warning, so that every worker forked from
the server starts with them."""
from flownet.data.synthetic_face import face_recognition_modules

face_recognition_modules()
