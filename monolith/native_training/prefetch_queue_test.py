import tensorflow as tf

from monolith.native_training import prefetch_queue


class AsyncFunctionMgrTest(tf.test.TestCase):

  def test_sync(self):
    mgr = prefetch_queue.AsyncFunctionMgr(is_async=False)
    self.assertEqual(mgr.add_async_function(lambda x, y=0: x * 10 + y, args=[4], kwargs={"y": 2}),
                     42)
    self.assertEqual(mgr.hooks, [])

  def test_async_runs_one_step_later_on_queued_args(self):
    mgr = prefetch_queue.AsyncFunctionMgr()
    x = tf.compat.v1.placeholder(tf.float32, [])
    ids = tf.compat.v1.placeholder(tf.int64, [3])
    ragged = tf.RaggedTensor.from_row_splits(ids, tf.constant([0, 1, 3], tf.int64))
    acc = tf.compat.v1.get_variable("acc", initializer=tf.constant(0.0), use_resource=True)
    id_sum = tf.compat.v1.get_variable("id_sum",
                                       initializer=tf.constant(0, tf.int64),
                                       use_resource=True)

    def target(x, r, scale, label=None):
      self.assertEqual(scale, 3)  # python leaves pass through
      self.assertIsNone(label)
      self.assertEqual(r.row_splits.shape.as_list(), [3])  # static shapes survive the queue
      return tf.group(acc.assign_add(x * scale), id_sum.assign_add(tf.reduce_sum(r.values)))

    enqueue = mgr.add_async_function(target, args=(x, ragged, 3), kwargs={"label": None})
    self.assertIsInstance(enqueue, tf.Operation)
    self.assertLen(mgr.hooks, 1)
    with tf.compat.v1.train.MonitoredSession(hooks=mgr.hooks) as sess:
      raw = sess._tf_sess()  # pylint: disable=protected-access
      sess.run(enqueue, {x: 1.0, ids: [1, 2, 3]})  # only queued
      self.assertEqual(raw.run([acc, id_sum]), [0.0, 0])
      sess.run(enqueue, {x: 2.0, ids: [10, 20, 30]})  # runs target on the first step's args
      self.assertEqual(raw.run([acc, id_sum]), [3.0, 6])
      sess.run(enqueue, {x: 4.0, ids: [0, 0, 0]})
      self.assertEqual(raw.run([acc, id_sum]), [9.0, 66])

  def test_end_drains(self):
    mgr = prefetch_queue.AsyncFunctionMgr()
    value = tf.constant(5.0)
    acc = tf.compat.v1.get_variable("acc", initializer=tf.constant(0.0), use_resource=True)
    enqueue = mgr.add_async_function(lambda v: acc.assign_add(v), args=[value])
    with tf.compat.v1.train.MonitoredSession(hooks=mgr.hooks) as sess:
      raw = sess._tf_sess()  # pylint: disable=protected-access
      sess.run(enqueue)
      sess.run(enqueue)
      self.assertEqual(raw.run(acc), 5.0)
      hook = mgr.hooks[0]
      hook.end(raw)
      self.assertEqual(raw.run(acc), 10.0)

  def test_rejects_unsupported_leaves(self):
    mgr = prefetch_queue.AsyncFunctionMgr()
    with self.assertRaisesRegex(ValueError, "Tensor is not supported. 1.5"):
      mgr.add_async_function(lambda x: x, args=[1.5])
    nested = tf.RaggedTensor.from_nested_row_splits(tf.constant([1, 2]),
                                                    [tf.constant([0, 1], tf.int64),
                                                     tf.constant([0, 2], tf.int64)])
    with self.assertRaisesRegex(ValueError, "doesn't support nested RaggedTensor"):
      mgr.add_async_function(lambda x: x, args=[nested])


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
