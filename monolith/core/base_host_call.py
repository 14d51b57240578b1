"""`BaseHostCall`: collects the tensors a TPU host call sends to the host, packed by dtype.

A TPU host call can only take a flat list of tensors with a leading batch dimension, and each
tensor costs an outfeed. Tensors are therefore recorded as 1-D vectors, concatenated per dtype
(`compress_tensors`) and split back on the host (`decompress_tensors`).
"""

import collections
from typing import List, Tuple

from absl import logging
import tensorflow as tf


class BaseHostCall:
  """Records rank-0/1 tensors for the host call; `global_step` is always the first one."""

  def __init__(self, output_dir: str, enable_host_call: bool):
    self._output_dir = output_dir
    self._enable_host_call = enable_host_call
    self._tensor_names = ['global_step']
    self._tensors = [tf.reshape(tf.compat.v1.train.get_or_create_global_step(), [-1])]
    # Per compressed tensor: the sizes of the tensors concatenated into it.
    self._lists_tensor_sizes = []

  def record_summary_tensor(self, name: str, tensor: tf.Tensor):
    if not self._enable_host_call:
      return
    assert name not in self._tensor_names, (
        'Host call tensor {} is recorded more than once.'.format(name))
    assert tensor.shape.rank <= 1, (
        'Host call tensor {} must be a scalar or a vector, got shape {}.'.format(
            name, tensor.shape))
    self._tensor_names.append(name)
    self._tensors.append(tf.reshape(tensor, [-1]))

  def compress_tensors(self):
    """Concatenates the recorded tensors per dtype into `[1, total]` tensors.

    The dtype groups keep first-appearance order, so the group holding `global_step` is first
    and `global_step` is its first element.
    """
    groups = collections.OrderedDict()
    for name, tensor in zip(self._tensor_names, self._tensors):
      groups.setdefault(tensor.dtype, []).append((name, tensor))
    compressed_names = []
    compressed_tensors = []
    self._lists_tensor_sizes = []
    for dtype, items in groups.items():
      names = [name for name, _ in items]
      tensors = [tensor for _, tensor in items]
      self._lists_tensor_sizes.append([
          t.shape.num_elements() if t.shape.is_fully_defined() else tf.size(t) for t in tensors
      ])
      compressed_names.append(names)
      compressed_tensors.append(tf.expand_dims(tf.concat(tensors, axis=0), axis=0))
      logging.info('Host call packs %d %s tensors: %s', len(names), dtype.name, names)
    self._tensor_names = compressed_names
    self._tensors = compressed_tensors

  def decompress_tensors(self, tensors: List[tf.Tensor]) -> Tuple[tf.Tensor, List[tf.Tensor]]:
    """Inverse of `compress_tensors` on the host.

    Args:
      tensors: the compressed tensors, `[num_cores, total]` each (the host call concatenates
        the per-core `[1, total]` tensors along the batch dimension).

    Returns:
      (global_step of the first core, list of 1-D tensors in the order of the flattened
      `self._tensor_names`; each holds the values of all cores, core after core).
    """
    assert len(tensors) == len(self._lists_tensor_sizes), (
        'Expected {} compressed tensors, got {}.'.format(len(self._lists_tensor_sizes),
                                                        len(tensors)))
    decompressed = []
    for tensor, sizes in zip(tensors, self._lists_tensor_sizes):
      tensor = tf.reshape(tensor, [-1, tf.shape(tensor)[-1]])
      for part in tf.split(tensor, sizes, num=len(sizes), axis=1):
        decompressed.append(tf.reshape(part, [-1]))
    # Upstream formats only the first character of the name into the message; kept.
    assert self._tensor_names[0][0] == 'global_step', (
        'The first tensor must be global_step, got {}'.format(self._tensor_names[0][0][0]))
    return decompressed[0][0], decompressed

  def generate_host_call_hook(self):
    """Returns `(host_call_fn, tensors)` for `TPUEstimatorSpec.host_call`, or None."""
    return None
