import tensorflow as tf

from monolith.core import base_host_call

tf.compat.v1.disable_eager_execution()


class BaseHostCallTest(tf.test.TestCase):

  def test_compress_decompress_round_trip(self):
    with tf.Graph().as_default():
      global_step = tf.compat.v1.train.get_or_create_global_step()
      host_call = base_host_call.BaseHostCall('/tmp/unused', True)
      values = {
          'loss': tf.constant(0.5),
          'labels': tf.constant([1.0, 0.0, 1.0]),
          'uids': tf.constant([7, 8], tf.int64),
          'count': tf.constant(3, tf.int32),
          'ids': tf.constant([4, 5, 6], tf.int32),
      }
      for name, value in values.items():
        host_call.record_summary_tensor(name, value)
      host_call.compress_tensors()
      # One tensor per dtype, global_step's (int64) group first.
      self.assertEqual(host_call._tensor_names,
                       [['global_step', 'uids'], ['loss', 'labels'], ['count', 'ids']])
      self.assertEqual([t.shape.as_list() for t in host_call._tensors], [[1, 3], [1, 4], [1, 4]])
      self.assertEqual([t.dtype for t in host_call._tensors], [tf.int64, tf.float32, tf.int32])

      # The host receives the per-core tensors concatenated along the batch dimension.
      two_cores = [tf.concat([t, t + tf.ones_like(t)], axis=0) for t in host_call._tensors]
      step, decompressed = host_call.decompress_tensors(two_cores)
      with self.session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        sess.run(global_step.assign(41))
        step_value, out = sess.run([step, decompressed])
    self.assertEqual(step_value, 41)
    names = [n for group in host_call._tensor_names for n in group]
    got = dict(zip(names, out))
    self.assertAllEqual(got['global_step'], [41, 42])
    self.assertAllEqual(got['uids'], [7, 8, 8, 9])
    self.assertAllClose(got['loss'], [0.5, 1.5])
    self.assertAllClose(got['labels'], [1.0, 0.0, 1.0, 2.0, 1.0, 2.0])
    self.assertAllEqual(got['count'], [3, 4])
    self.assertAllEqual(got['ids'], [4, 5, 6, 5, 6, 7])

  def test_record_errors_and_disabled(self):
    with tf.Graph().as_default():
      host_call = base_host_call.BaseHostCall('', True)
      host_call.record_summary_tensor('a', tf.constant(1.0))
      with self.assertRaisesRegex(AssertionError, 'a is recorded more than once'):
        host_call.record_summary_tensor('a', tf.constant(2.0))
      with self.assertRaisesRegex(AssertionError, 'must be a scalar or a vector'):
        host_call.record_summary_tensor('m', tf.zeros([2, 2]))
      with self.assertRaisesRegex(AssertionError, 'Expected 2 compressed tensors, got 1'):
        host_call.compress_tensors()
        host_call.decompress_tensors(host_call._tensors[:1])
      self.assertIsNone(host_call.generate_host_call_hook())

      disabled = base_host_call.BaseHostCall('', False)
      disabled.record_summary_tensor('a', tf.constant(1.0))
      self.assertEqual(disabled._tensor_names, ['global_step'])

  def test_global_step_must_come_first(self):
    with tf.Graph().as_default():
      host_call = base_host_call.BaseHostCall('', True)
      host_call.compress_tensors()
      host_call._tensor_names = [['loss']]
      # Upstream formats only the first character of the first name.
      with self.assertRaisesRegex(AssertionError, 'The first tensor must be global_step, got l$'):
        host_call.decompress_tensors(host_call._tensors)


if __name__ == '__main__':
  tf.test.main()
