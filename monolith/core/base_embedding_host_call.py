"""Host call of embedding tasks: scalar metrics and DeepInsight tensors (labels, predictions, ...).

Two modes:
* direct: every step the sampled per-core tensors are sent to the host, which writes them;
* caching (`enable_caching_with_tpu_var_mode`): each core accumulates `host_call_every_n_steps`
  steps of samples in TPU variables (`update_tpu_variables_ops`); the host writes the whole
  window once every `host_call_every_n_steps` steps. This trades TPU memory for outfeed traffic.

The host writes TF2 summaries under `<output_dir>/host_call`: scalar metrics (mean over cores),
the AUC of the DeepInsight samples, and the samples themselves as serialized tensors.
"""

import os
from typing import Dict

from absl import logging
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from monolith.core import base_host_call
from monolith.core.tpu_variable import ReplicatedVariable

# DeepInsight tensors recorded per example.
_LABELS = 'labels'
_PREDS = 'preds'
_UID_BUCKETS = 'uid_buckets'
_REQ_TIMES = 'req_times'
_SAMPLE_RATES = 'sample_rates'
_STOPPING_SIGNALS = 'stopping_signals'
_DEEPINSIGHT_TENSOR_NAMES = (_LABELS, _PREDS, _UID_BUCKETS, _REQ_TIMES, _SAMPLE_RATES,
                             _STOPPING_SIGNALS)
# Number of steps written into the caching TPU variables in the current window.
_ACCUMULATED_COUNTER = 'accumulated_counter'
_AUC = 'auc'
# TensorBoard's scalar plugin marker, written without importing tensorboard (not a dependency).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))

# Collection of the per-replica caching variables.
TPU_VAR = 'TPU_VAR'
_TPU_VAR_PREFIX = 'tpu_var_'
# uid bucket of slots that hold no example (padding of the caching window); filtered out.
_EMPTY_UID_BUCKET = -1
# (name, dtype, initial value) of the caching variables, one entry per sampled example.
_TPU_VAR_SPECS = (
    (_LABELS, tf.float32, 0),
    (_PREDS, tf.float32, 0),
    (_UID_BUCKETS, tf.int32, _EMPTY_UID_BUCKET),
    (_REQ_TIMES, tf.int64, 0),
    (_SAMPLE_RATES, tf.float32, 0),
)


class TPUVariableRestoreHook(tf.compat.v1.train.SessionRunHook):
  """Runs `assign_op` once the session exists (TPU variable contents do not survive restarts)."""

  def __init__(self, assign_op):
    self._assign_op = assign_op

  def after_create_session(self, session, coord):
    del coord
    session.run(self._assign_op)


class BaseEmbeddingHostCall(base_host_call.BaseHostCall):
  """Host call of `BaseEmbeddingTask` models."""

  def __init__(self, output_dir, enable_host_call, enable_deepinsight,
               enable_host_call_scalar_metrics, enable_caching_with_tpu_var_mode,
               top_k_sampling_num_per_core, params):
    super(BaseEmbeddingHostCall, self).__init__(output_dir, enable_host_call)
    self._enable_deepinsight = enable_deepinsight
    self._enable_host_call_scalar_metrics = enable_host_call_scalar_metrics
    self._enable_caching_with_tpu_var_mode = enable_caching_with_tpu_var_mode
    self._top_k_sampling_num_per_core = top_k_sampling_num_per_core
    self._host_call_every_n_steps = params['host_call_every_n_steps']
    self._cpu_test = params['cpu_test']
    self._context = None if self._cpu_test else params['context']
    self._tpu_vars: Dict[str, ReplicatedVariable] = {}
    self._tpu_var_restore_hooks = []
    if self._enable_host_call and self._enable_caching_with_tpu_var_mode:
      window = self._top_k_sampling_num_per_core * self._host_call_every_n_steps
      for name, dtype, initial_value in _TPU_VAR_SPECS:
        self._create_tpu_var(name, [window], dtype, initial_value)
      self._create_tpu_var(_ACCUMULATED_COUNTER, [1], tf.int32, 0)

  @property
  def tpu_var_restore_hooks(self):
    return self._tpu_var_restore_hooks

  def _create_tpu_var(self, name, shape, dtype, initial_value):
    """Creates one variable per replica (on its TPU core) wrapped in a ReplicatedVariable."""
    ctx = self._context
    var_name = _TPU_VAR_PREFIX + name
    initial = tf.fill(shape, tf.constant(initial_value, dtype))
    slices = []
    for host_id in range(ctx.num_hosts):
      for replica_in_host in range(ctx.num_of_replicas_per_host):
        replica_id = host_id * ctx.num_of_replicas_per_host + replica_in_host
        with tf.device(ctx.tpu_device_placement_function(replica_id)):
          slices.append(
              tf.compat.v1.get_variable(
                  '{}_{}'.format(var_name, replica_id),
                  initializer=initial,
                  trainable=False,
                  use_resource=True,
                  collections=[TPU_VAR, tf.compat.v1.GraphKeys.LOCAL_VARIABLES]))
    variable = ReplicatedVariable(var_name, slices)
    self._tpu_vars[name] = variable
    self._tpu_var_restore_hooks.append(
        TPUVariableRestoreHook(tf.group([v.assign(initial) for v in slices])))
    return variable

  def _compute_new_value(self, base, delta, update_offset):
    """Adds `delta` into `base` starting at `update_offset` (wrapping around the end)."""
    padded = tf.pad(delta, [[0, tf.size(base) - tf.size(delta)]])
    return base + tf.roll(padded, shift=update_offset, axis=0)

  def update_tpu_variables_ops(self, global_step, labels, preds, uid_buckets, req_times,
                               sample_rates):
    """Writes this step's samples (each `[top_k]`) into the caching window.

    The window restarts (values reset) at steps where `global_step % n == 1`.
    """
    counter_var = self._tpu_vars[_ACCUMULATED_COUNTER]
    restart = tf.equal(tf.math.floormod(global_step, self._host_call_every_n_steps), 1)
    counter = tf.where(restart, tf.zeros([1], tf.int32), counter_var.read_value())
    offset = counter[0] * self._top_k_sampling_num_per_core
    updates = []
    values = {
        _LABELS: labels,
        _PREDS: preds,
        _UID_BUCKETS: uid_buckets,
        _REQ_TIMES: req_times,
        _SAMPLE_RATES: sample_rates
    }
    for name, dtype, initial_value in _TPU_VAR_SPECS:
      var = self._tpu_vars[name]
      current = var.read_value()
      base = tf.where(restart, tf.fill(tf.shape(current), tf.constant(initial_value, dtype)),
                      current)
      delta = tf.reshape(tf.cast(values[name], dtype), [-1])
      if initial_value:
        # `_compute_new_value` adds; make the written slots end up holding `delta`.
        delta = delta - initial_value
      updates.append(var.assign(self._compute_new_value(base, delta, offset)))
    # The counter moves only once the window holds this step's values.
    with tf.control_dependencies(updates):
      counter_update = counter_var.assign(counter + 1)
    return tf.group(updates + [counter_update])

  def record_summary_tpu_variables(self):
    """Sends the caching window (and the counter) through the host call."""
    for name, _, _ in _TPU_VAR_SPECS:
      self.record_summary_tensor(name, self._tpu_vars[name].read_value())
    self.record_summary_tensor(_ACCUMULATED_COUNTER,
                               self._tpu_vars[_ACCUMULATED_COUNTER].read_value())

  def record_summary_tensor(self, name, tensor):
    if name in _DEEPINSIGHT_TENSOR_NAMES or name == _ACCUMULATED_COUNTER:
      if not self._enable_deepinsight:
        return
    elif not self._enable_host_call_scalar_metrics:
      return
    super(BaseEmbeddingHostCall, self).record_summary_tensor(name, tensor)

  def _write_summary_ops(self, global_step, tensor_dict):
    """Writes the decompressed host call tensors as summaries at `global_step`."""
    for name, tensor in tensor_dict.items():
      if name in _DEEPINSIGHT_TENSOR_NAMES or name in ('global_step', _ACCUMULATED_COUNTER):
        continue
      _write_scalar(name, tf.reduce_mean(tf.cast(tensor, tf.float32)), global_step)
    if _LABELS not in tensor_dict or _PREDS not in tensor_dict:
      return
    keep = tf.ones_like(tensor_dict[_LABELS], tf.bool)
    if _UID_BUCKETS in tensor_dict:
      keep = tf.logical_and(keep, tf.not_equal(tensor_dict[_UID_BUCKETS], _EMPTY_UID_BUCKET))
    if _STOPPING_SIGNALS in tensor_dict:
      # Batches after the stop signal are repeated filler data.
      keep = tf.logical_and(keep, tf.equal(tensor_dict[_STOPPING_SIGNALS], 0))
    kept = {
        name: tf.boolean_mask(tensor_dict[name], keep)
        for name in _DEEPINSIGHT_TENSOR_NAMES
        if name in tensor_dict and name != _STOPPING_SIGNALS
    }
    auc, defined = _auc(kept[_LABELS], kept[_PREDS])
    # record_if replaces the enclosing condition, so it has to be and-ed in explicitly.
    with tf.summary.record_if(tf.logical_and(tf.summary.should_record_summaries(), defined)):
      _write_scalar(_AUC, auc, global_step)
    for name, tensor in kept.items():
      tf.summary.write(name, tf.io.serialize_tensor(tensor), step=global_step)

  def _host_call(self, *tensors):
    global_step, decompressed = self.decompress_tensors(list(tensors))
    return self._write_host_call(global_step, decompressed, should_record=True)

  def _host_call_with_tpu(self, *tensors):
    global_step, decompressed = self.decompress_tensors(list(tensors))
    # The caching window is complete only at the end of every n-th step.
    window_done = tf.equal(tf.math.floormod(global_step, self._host_call_every_n_steps), 0)
    return self._write_host_call(global_step, decompressed, should_record=window_done)

  def _write_host_call(self, global_step, decompressed, should_record):
    names = [name for group in self._tensor_names for name in group]
    tensor_dict = dict(zip(names, decompressed))
    writer = tf.summary.create_file_writer(os.path.join(self._output_dir, 'host_call'))
    with writer.as_default(), tf.summary.record_if(should_record):
      self._write_summary_ops(tf.cast(global_step, tf.int64), tensor_dict)
      return tf.compat.v1.summary.all_v2_summary_ops()

  def generate_host_call_hook(self):
    """Returns `(host_call_fn, compressed tensors)` or None when the host call is disabled."""
    if not self._enable_host_call:
      return None
    self.compress_tensors()
    logging.info('Host call tensors: %s', self._tensor_names)
    if self._enable_caching_with_tpu_var_mode:
      return self._host_call_with_tpu, self._tensors
    return self._host_call, self._tensors


def _write_scalar(name, value, step):
  tf.summary.write(name, tf.cast(value, tf.float32), step=step,
                   metadata=_SCALAR_METADATA.SerializeToString())


def _auc(labels, preds):
  """ROC AUC by the rank-sum statistic (ties get their average rank); labels > 0 are positive.

  Returns (auc, defined): AUC is undefined unless both classes are present.
  """
  labels = tf.convert_to_tensor(labels)
  preds = tf.convert_to_tensor(preds)
  positives = tf.cast(labels > 0, tf.float64)
  order = tf.argsort(preds, stable=True)
  sorted_preds = tf.gather(preds, order)
  sorted_positives = tf.gather(positives, order)
  _, tie_group = tf.unique(sorted_preds)
  positions = tf.cast(tf.range(1, tf.size(preds) + 1), tf.float64)
  ranks = tf.gather(tf.math.segment_mean(positions, tie_group), tie_group)
  num_pos = tf.reduce_sum(sorted_positives)
  num_neg = tf.cast(tf.size(preds), tf.float64) - num_pos
  rank_sum = tf.reduce_sum(ranks * sorted_positives)
  auc = tf.math.divide_no_nan(rank_sum - num_pos * (num_pos + 1) / 2, num_pos * num_neg)
  return tf.cast(auc, tf.float32), tf.logical_and(num_pos > 0, num_neg > 0)
