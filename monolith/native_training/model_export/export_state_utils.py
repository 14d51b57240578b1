"""The `ExportSaverListenerState` file: which versions of a sub-model were exported, and when."""

import os

import tensorflow as tf
from google.protobuf import text_format

from monolith.native_training.model_export import export_pb2

_ExportSaverListenerStateFile = 'ExportSaverListenerState'


def _state_path(export_dir_base: str) -> str:
  return os.path.join(export_dir_base, _ExportSaverListenerStateFile)


def get_export_saver_listener_state(export_dir_base: str) -> export_pb2.ServingModelState:
  """The state under `export_dir_base`; empty when there is no file (parse errors raise)."""
  state = export_pb2.ServingModelState()
  try:
    with tf.io.gfile.GFile(_state_path(export_dir_base)) as fp:
      text_format.Merge(fp.read(), state)
  except tf.errors.NotFoundError:
    pass
  return state


def overwrite_export_saver_listener_state(export_dir_base: str,
                                          state: export_pb2.ServingModelState):
  """Replaces the state file atomically (write `-tmp`, then rename over it)."""
  tf.io.gfile.makedirs(export_dir_base)
  path = _state_path(export_dir_base)
  tmp = path + '-tmp'
  with tf.io.gfile.GFile(tmp, 'w') as fp:
    fp.write(text_format.MessageToString(state))
  tf.io.gfile.rename(tmp, path, overwrite=True)
