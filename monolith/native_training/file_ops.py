"""Files written from the graph: raw appends and entry dumps, closed by a session hook."""
from typing import List

import tensorflow as tf

from monolith.native_training.runtime.ops import gen_monolith_ops

file_ops = gen_monolith_ops


class WritableFile:
  """One writable file as a resource. The file is created (parent directories included, an
  existing file truncated) when the handle op first runs; appends from several threads never
  interleave within one append."""

  def __init__(self, filename: str):
    self._handle = file_ops.monolith_writable_file(filename=filename)

  def append(self, content) -> tf.Operation:
    """Appends the raw bytes of a scalar string tensor."""
    return file_ops.monolith_writable_file_append(self._handle, content)

  def append_entry_dump(self, item_id, bias, embedding) -> tf.Operation:
    """Appends one TFRecord-framed `EntryDump{id, num=[bias, embedding...]}` per item id;
    `embedding` holds len(item_id) equally long rows."""
    return file_ops.monolith_entry_dump_file_append(self._handle, item_id, bias, embedding)

  def close(self) -> tf.Operation:
    return file_ops.monolith_writable_file_close(self._handle)


class FileCloseHook(tf.compat.v1.train.SessionRunHook):
  """Closes the given files when the session ends."""

  def __init__(self, files: List[WritableFile]):
    assert isinstance(files, list), "files must be a list of WritableFile"
    self._close_ops = [f.close() for f in files]

  def end(self, session):
    session.run(self._close_ops)
