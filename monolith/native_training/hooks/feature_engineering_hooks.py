"""Dumps the feature batches a training job consumes, as ExampleBatch records under
<model_dir>/features, for offline feature engineering."""

import os
import struct
import uuid
from typing import Dict, List, Union

from absl import logging
import numpy as np
import tensorflow as tf

from idl.matrix.proto import example_pb2

_UINT64_MASK = (1 << 64) - 1

BatchValue = Union[tf.compat.v1.ragged.RaggedTensorValue, np.ndarray]


class FeatureEngineeringSaveHook(tf.compat.v1.train.SessionRunHook):
  """Fetches `nxt_elem` (a dict of feature name -> tensor or ragged tensor) with every step and
  writes the batches to a new file every `cap` steps and at the end.

  `config` supplies `model_dir` and the worker `index` (0 = chief)."""

  def __init__(self, config, nxt_elem: Dict[str, Union[tf.Tensor, tf.RaggedTensor]], cap=100):
    self._config = config
    self._nxt_elem = nxt_elem
    self._cap = cap
    self._batch_list = []
    self._steps = 0

  def begin(self):
    self._batch_list = []
    self._steps = 0

  def before_run(self, run_context):
    self._steps += 1
    # The first run initializes the iterator; there is no batch to fetch yet.
    if self._steps > 1:
      return tf.compat.v1.train.SessionRunArgs(self._nxt_elem)
    return None

  def after_run(self, run_context, run_values):
    if run_values.results is None:
      return
    self._batch_list.append(run_values.results)
    if len(self._batch_list) >= self._cap:
      self._save_features()
      self._batch_list = []

  def end(self, session):
    self._save_features()
    self._batch_list = []

  def _output_path(self) -> str:
    index = getattr(self._config, "index", 0)
    prefix = "chief" if index == 0 else "worker{}".format(index)
    return os.path.join(self._config.model_dir, "features", "{}_{}.pb".format(prefix, uuid.uuid1()))

  def _save_features(self):
    path = self._output_path()
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
      for batch in self._batch_list:
        data = _to_example_batch(batch).SerializeToString()
        # Monolith's framing: an 8-byte lagrange header (0 here) and the 8-byte size.
        f.write(struct.pack("<Q", 0))
        f.write(struct.pack("<Q", len(data)))
        f.write(data)
    logging.info("Saved %d feature batches to %s", len(self._batch_list), path)


def _rows(value: BatchValue) -> List:
  if isinstance(value, tf.compat.v1.ragged.RaggedTensorValue):
    return value.to_list()
  return np.asarray(value).tolist()


def _to_example_batch(batch: Dict[str, BatchValue]) -> example_pb2.ExampleBatch:
  example_batch = example_pb2.ExampleBatch()
  for name, value in batch.items():
    rows = _rows(value)
    named = example_batch.named_feature_list.add(name=name, type=example_pb2.INDIVIDUAL)
    for row in rows:
      row = _flatten(row)
      feature = named.feature.add()
      # As upstream: a row is float when its first value is (an empty row is an empty fid list).
      if row and isinstance(row[0], float):
        feature.float_list.value.extend(row)
      else:
        # Fids are uint64 carried in int64 tensors; negative values are high-bit fids, which
        # upstream fails to store (fixed64 rejects them).
        feature.fid_v2_list.value.extend(int(v) & _UINT64_MASK for v in row)
    example_batch.batch_size = len(rows)
  return example_batch


def _flatten(row) -> List:
  if not isinstance(row, list):
    return [row]
  out = []
  for item in row:
    out.extend(_flatten(item))
  return out
