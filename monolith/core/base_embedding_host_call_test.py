import os

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.ops import summary_ops_v2

from monolith.core import base_embedding_host_call
from monolith.core.base_embedding_host_call import BaseEmbeddingHostCall

tf.disable_eager_execution()


class _CpuContext:
  """TPU context stand-in placing every "replica" variable on the CPU."""
  num_hosts = 1
  num_of_replicas_per_host = 2

  def tpu_device_placement_function(self, replica_id):
    del replica_id
    return '/cpu:0'


def _read_events(log_dir):
  """tag -> [(step, value)] of the summaries written under log_dir."""
  events = {}
  for name in sorted(tf.io.gfile.listdir(log_dir)):
    for event in tf.train.summary_iterator(os.path.join(log_dir, name)):
      for value in event.summary.value:
        tensor = tf.make_ndarray(value.tensor)
        if value.metadata.plugin_data.plugin_name == 'scalars':
          decoded = float(tensor)
        else:
          decoded = tf.make_ndarray(
              tf.make_tensor_proto(tensor)).item()  # serialized TensorProto bytes
        events.setdefault(value.tag, []).append((event.step, decoded))
  return events


class BaseEmbeddingHostCallTest(tf.test.TestCase):

  def test_compute_new_value(self):
    with tf.Graph().as_default():
      tf.train.get_or_create_global_step()
      params = {
          'enable_host_call': False,
          'context': None,
          'cpu_test': False,
          'host_call_every_n_steps': 100
      }
      host_call = BaseEmbeddingHostCall('', False, False, False, False, 10, params)
      base_value = tf.zeros([10], tf.int32)
      delta_value = tf.ones([2], tf.int32)
      expected = [
          (1, [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]),
          (5, [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]),
          (6, [0, 1, 1, 0, 0, 1, 2, 1, 0, 0]),
      ]
      value = base_value
      for offset, want in expected:
        value = host_call._compute_new_value(value, delta_value, offset)
        with tf.Session() as sess:
          self.assertTrue(
              sess.run(tf.reduce_all(tf.math.equal(value, tf.constant(want, tf.int32)))))
          self.assertAllEqual(sess.run(value), want)

  def test_record_filtering(self):
    with tf.Graph().as_default():
      params = {'context': None, 'cpu_test': True, 'host_call_every_n_steps': 1}
      scalars_only = BaseEmbeddingHostCall('', True, False, True, False, 2, params)
      scalars_only.record_summary_tensor('loss', tf.constant(1.0))
      scalars_only.record_summary_tensor('labels', tf.constant([1.0]))
      self.assertEqual(scalars_only._tensor_names, ['global_step', 'loss'])
      deepinsight_only = BaseEmbeddingHostCall('', True, True, False, False, 2, params)
      deepinsight_only.record_summary_tensor('loss', tf.constant(1.0))
      deepinsight_only.record_summary_tensor('labels', tf.constant([1.0]))
      self.assertEqual(deepinsight_only._tensor_names, ['global_step', 'labels'])
      disabled = BaseEmbeddingHostCall('', False, True, True, False, 2, params)
      self.assertIsNone(disabled.generate_host_call_hook())

  def test_host_call_writes_summaries_and_auc(self):
    output_dir = self.create_tempdir().full_path
    with tf.Graph().as_default():
      global_step = tf.train.get_or_create_global_step()
      params = {'context': None, 'cpu_test': True, 'host_call_every_n_steps': 1}
      host_call = BaseEmbeddingHostCall(output_dir, True, True, True, False, 4, params)
      host_call.record_summary_tensor('loss', tf.constant(0.25))
      # 5 examples; the last is padding (uid bucket -1), the 4th comes from a stop batch.
      host_call.record_summary_tensor('labels', tf.constant([1.0, 0.0, 1.0, 1.0, 1.0]))
      host_call.record_summary_tensor('preds', tf.constant([0.9, 0.2, 0.1, 0.0, 0.0]))
      host_call.record_summary_tensor('uid_buckets', tf.constant([3, 4, 5, 6, -1]))
      host_call.record_summary_tensor('stopping_signals', tf.constant([0, 0, 0, 1, 0]))
      host_call_fn, tensors = host_call.generate_host_call_hook()
      summary_ops = host_call_fn(*tensors)
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(global_step.assign(7))
        sess.run(summary_ops_v2.summary_writer_initializer_op())
        sess.run(summary_ops)
        sess.run(summary_ops_v2.flush())
    events = _read_events(os.path.join(output_dir, 'host_call'))
    self.assertEqual(events['loss'], [(7, 0.25)])
    # Kept: (1, .9), (0, .2), (1, .1): the negative outranks one of two positives.
    self.assertEqual(events['auc'][0][0], 7)
    self.assertAlmostEqual(events['auc'][0][1], 0.5)
    labels = tf.make_ndarray(_parse_tensor_proto(events['labels'][0][1]))
    self.assertAllClose(labels, [1.0, 0.0, 1.0])
    buckets = tf.make_ndarray(_parse_tensor_proto(events['uid_buckets'][0][1]))
    self.assertAllEqual(buckets, [3, 4, 5])

  def test_auc(self):
    with tf.Graph().as_default(), tf.Session() as sess:
      labels = np.array([1, 1, 0, 0, 1, 0], np.float32)
      preds = np.array([0.8, 0.4, 0.4, 0.1, 0.9, 0.7], np.float32)
      auc, defined = sess.run(base_embedding_host_call._auc(labels, preds))
      # Pairs (pos > neg): 0.8:3, 0.4: 1 + tie 0.5, 0.9: 3 -> 7.5 / 9.
      self.assertAlmostEqual(auc, 7.5 / 9, places=6)
      self.assertTrue(defined)
      _, defined = sess.run(base_embedding_host_call._auc([1.0, 1.0], [0.1, 0.2]))
      self.assertFalse(defined)

  def test_caching_with_tpu_variables(self):
    output_dir = self.create_tempdir().full_path
    with tf.Graph().as_default():
      global_step = tf.train.get_or_create_global_step()
      params = {'context': _CpuContext(), 'cpu_test': False, 'host_call_every_n_steps': 2}
      host_call = BaseEmbeddingHostCall(output_dir, True, True, False, True, 2, params)
      self.assertLen(tf.get_collection(base_embedding_host_call.TPU_VAR), 6 * 2)
      step = tf.placeholder(tf.int64, [])
      labels = tf.placeholder(tf.float32, [2])
      update = host_call.update_tpu_variables_ops(step, labels, labels * 0.5,
                                                  tf.constant([1, 2]),
                                                  tf.constant([10, 20], tf.int64),
                                                  tf.constant([1.0, 1.0]))
      host_call.record_summary_tpu_variables()
      host_call_fn, tensors = host_call.generate_host_call_hook()
      summary_ops = host_call_fn(*tensors)
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        sess.run(tf.local_variables_initializer())
        sess.run(summary_ops_v2.summary_writer_initializer_op())
        for s, value in ((1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [1.0, 1.0])):
          sess.run(update, {step: s, labels: value})
          sess.run(global_step.assign(s))
          sess.run(summary_ops)
          if s == 2:
            window = sess.run([host_call._tpu_vars[n].read_value()
                               for n in ('labels', 'uid_buckets', 'accumulated_counter')])
        # Step 3 restarts the window: one step written, the rest is padding.
        after_restart = sess.run([host_call._tpu_vars[n].read_value()
                                  for n in ('labels', 'uid_buckets', 'accumulated_counter')])
        sess.run(summary_ops_v2.flush())
    self.assertAllClose(window[0], [1.0, 0.0, 0.0, 1.0])
    self.assertAllEqual(window[1], [1, 2, 1, 2])
    self.assertAllEqual(window[2], [2])
    self.assertAllClose(after_restart[0], [1.0, 1.0, 0.0, 0.0])
    self.assertAllEqual(after_restart[1], [1, 2, -1, -1])
    self.assertAllEqual(after_restart[2], [1])
    events = _read_events(os.path.join(output_dir, 'host_call'))
    # Only the complete window (step 2) is written.
    self.assertEqual([s for s, _ in events['auc']], [2])
    # preds = labels / 2 separates the classes perfectly.
    self.assertAlmostEqual(events['auc'][0][1], 1.0)
    labels_written = tf.make_ndarray(_parse_tensor_proto(events['labels'][0][1]))
    self.assertAllClose(labels_written, [1.0, 0.0, 0.0, 1.0])


def _parse_tensor_proto(serialized):
  proto = tf.make_tensor_proto(0)
  proto.ParseFromString(serialized)
  return proto


if __name__ == '__main__':
  tf.test.main()
