import os

import numpy as np
import tensorflow as tf

from monolith.native_training import basic_restore_hook
from monolith.native_training import hash_filter_ops
from monolith.native_training import hash_table_ops
from monolith.native_training import test_utils
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2
from monolith.native_training.runtime.ops import gen_monolith_ops


def _threshold_config(threshold: int) -> bytes:
  return embedding_hash_table_pb2.SlotOccurrenceThresholdConfig(
      default_occurrence_threshold=threshold).SerializeToString()


def _counting_filter(threshold: int = 3, split_num: int = 7, suffix: str = "") -> tf.Tensor:
  return hash_filter_ops.create_hash_filter(100, split_num, _threshold_config(threshold),
                                            name_suffix=suffix)


def _admitted_rows(sess, grad_op, ids_ph, ids) -> np.ndarray:
  """Which rows of `ids` the filter lets gradients through for (one query each)."""
  return sess.run(grad_op, feed_dict={ids_ph: ids})[:, 0] != 0


def _intercepted_grad(hash_filter, ids=None):
  if ids is None:
    ids = tf.compat.v1.placeholder(tf.int64, [None])
  embeddings = tf.ones_like(tf.cast(tf.expand_dims(ids, 1), tf.float32)) * tf.ones([1, 2])
  out = hash_filter_ops.intercept_gradient(hash_filter, ids, embeddings)
  return ids, tf.gradients(out * 5.0, embeddings)[0]


class HashFilterOpsTest(tf.test.TestCase):

  def test_intercept_gradient_zeroes_rows_until_admitted(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      ids, grad = _intercepted_grad(_counting_filter(threshold=3))
      forward = hash_filter_ops.intercept_gradient(_counting_filter(threshold=3), ids,
                                                   tf.fill([2, 2], 7.0))
      np.testing.assert_array_equal(sess.run(forward, {ids: [1, 2]}), np.full([2, 2], 7.0))
      # Occurrences 1-3 of id 10 are filtered (count before < 3), the 4th is admitted.
      for _ in range(3):
        self.assertEqual(_admitted_rows(sess, grad, ids, [10]).tolist(), [False])
      got = sess.run(grad, {ids: [10, 11]})
      np.testing.assert_array_equal(got, [[5.0, 5.0], [0.0, 0.0]])

  def test_dummy_filter_admits_everything_and_saves_nothing(self):
    base = os.path.join(self.get_temp_dir(), "dummy", "hash_filter_0")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      dummy = hash_filter_ops.create_dummy_hash_filter()
      ids, grad = _intercepted_grad(dummy)
      self.assertTrue(_admitted_rows(sess, grad, ids, [1, 2, 3]).all())
      sess.run(hash_filter_ops.save_hash_filter(dummy, base))
      self.assertEqual(tf.io.gfile.glob(base + "*"), [])
      sess.run(hash_filter_ops.restore_hash_filter(dummy, base))  # nothing to read: a no-op

  def test_save_restore_round_trip_in_a_new_session(self):
    base = os.path.join(self.get_temp_dir(), "round_trip", "hash_filter_0")
    with tf.Graph().as_default():
      hash_filter = _counting_filter(threshold=3, split_num=5)
      ids, grad = _intercepted_grad(hash_filter)
      save = hash_filter_ops.save_hash_filter(hash_filter, base)
      restore = hash_filter_ops.restore_hash_filter(hash_filter, base)
      with tf.compat.v1.Session() as sess:
        sess.run(grad, {ids: [1, 1, 2]})  # id 1 seen twice, id 2 once
        sess.run(grad, {ids: np.arange(1000, 5000)})  # 4,000 more ids across every split
        sess.run(save)
      self.assertEqual(sorted(os.path.basename(f) for f in tf.io.gfile.glob(base + "-*")),
                       ["hash_filter_0-%05d-of-00005" % i for i in range(5)])
      with tf.compat.v1.Session() as sess:  # a fresh filter resource
        self.assertEqual(_admitted_rows(sess, grad, ids, [1]).tolist(), [False])  # count 0 -> 1
        sess.run(restore)
        # Restored counts replace the fresh ones: id 1 had 2 (one more query is filtered, then
        # admitted), id 2 had 1.
        self.assertEqual(_admitted_rows(sess, grad, ids, [1, 2]).tolist(), [False, False])
        self.assertEqual(_admitted_rows(sess, grad, ids, [1, 2]).tolist(), [True, False])
        self.assertEqual(_admitted_rows(sess, grad, ids, [2, 1000]).tolist(), [True, False])

  def test_table_admission_survives_restore(self):
    base = os.path.join(self.get_temp_dir(), "table", "hash_filter_0")
    with tf.Graph().as_default():
      hash_filter = _counting_filter(threshold=2, suffix="_table")
      table = hash_table_ops.hash_table_from_config(test_utils.generate_test_hash_table_config(1),
                                                    hash_filter=hash_filter,
                                                    name_suffix="filtered")
      ids = tf.compat.v1.placeholder(tf.int64, [None])
      assign = table.assign(ids, tf.ones([tf.size(ids), 1])).as_op()
      size = table.size()
      with tf.compat.v1.Session() as sess:
        sess.run(assign, {ids: [7]})  # count 0 -> 1: filtered
        self.assertEqual(sess.run(size), 0)
        sess.run(hash_filter_ops.save_hash_filter(hash_filter, base))
      with tf.compat.v1.Session() as sess:
        sess.run(hash_filter_ops.restore_hash_filter(hash_filter, base))
        sess.run(assign, {ids: [7, 8]})  # 7: count 1 -> 2, still filtered; 8: new
        self.assertEqual(sess.run(size), 0)
        sess.run(assign, {ids: [7, 8]})  # 7 admitted (count 2), 8 still filtered (count 1)
        self.assertEqual(sess.run(size), 1)

  def test_restore_errors_leave_the_filter_unchanged(self):
    tmp = self.get_temp_dir()
    with tf.Graph().as_default():
      hash_filter = _counting_filter(threshold=2, split_num=1, suffix="_bad")
      ids, grad = _intercepted_grad(hash_filter)
      basename = tf.compat.v1.placeholder(tf.string, [])
      restore = hash_filter_ops.restore_hash_filter(hash_filter, basename)
      foreign = os.path.join(tmp, "foreign", "hash_filter_0")
      tf.io.gfile.makedirs(os.path.dirname(foreign))
      with tf.io.TFRecordWriter(foreign + "-00000-of-00001") as w:
        # Upstream's probabilistic layout: total_size is a cell capacity.
        w.write(
            embedding_hash_table_pb2.HashFilterSplitMetaDump(total_size=65536,
                                                             num_elements=12).SerializeToString())
      with tf.compat.v1.Session() as sess:
        sess.run(grad, {ids: [5]})  # id 5: count 1
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "There is no valid sharded files for .*missing"):
          sess.run(restore, {basename: os.path.join(tmp, "missing")})
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "hash_filter_0-00000-of-00001 is not a dump of this filter"):
          sess.run(restore, {basename: foreign})
        # Still count 1: this query (before 1 < 2) is filtered, the next admitted.
        self.assertEqual(_admitted_rows(sess, grad, ids, [5]).tolist(), [False])
        self.assertEqual(_admitted_rows(sess, grad, ids, [5]).tolist(), [True])

  def test_bad_grad_shape_names_the_argument(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      op = gen_monolith_ops.MonolithHashFilterInterceptGradientGradient(
          filter_handle=_counting_filter(suffix="_shape"),
          ids=tf.constant([1, 2], tf.int64),
          grad=tf.ones([3, 2]))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  r"grad must have one row per id \(2 ids\)"):
        sess.run(op)

  def test_checkpoint_listeners(self):
    model_dir = os.path.join(self.get_temp_dir(), "listeners")
    basename = os.path.join(model_dir, "model.ckpt")
    with tf.Graph().as_default():
      filters = hash_filter_ops.create_hash_filters(2, True, _threshold_config(2))
      ids, grad0 = _intercepted_grad(filters[0])
      _, grad1 = _intercepted_grad(filters[1], ids)
      global_step = tf.compat.v1.train.get_or_create_global_step()
      saver = tf.compat.v1.train.Saver()
      disabled = hash_filter_ops.HashFilterCheckpointSaverListener(basename, filters, False)
      listener = hash_filter_ops.HashFilterCheckpointSaverListener(basename, filters, True)
      restorer = hash_filter_ops.HashFilterCheckpointRestorerListener(basename, filters, True)
      self.assertIsInstance(restorer, basic_restore_hook.CheckpointRestorerListener)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        restorer.before_restore(sess)  # no checkpoint yet: filters start empty
        sess.run([grad0, grad1], {ids: [3]})  # id 3: count 1 in both filters
        disabled.before_save(sess, 0)
        self.assertFalse(tf.io.gfile.exists(basename + "-0.assets"))
        listener.before_save(sess, 0)
        saver.save(sess, basename, global_step=0)
      assets = basename + "-0.assets/"
      self.assertEqual(
          sorted(os.path.basename(f) for f in tf.io.gfile.glob(assets + "hash_filter_*")),
          ["hash_filter_%d-%05d-of-00007" % (ps, i) for ps in range(2) for i in range(7)])
      with tf.compat.v1.Session() as sess:
        saver.restore(sess, basename + "-0")
        restorer.before_restore(sess)
        self.assertEqual(_admitted_rows(sess, grad0, ids, [3]).tolist(), [False])  # 1 -> 2
        self.assertEqual(_admitted_rows(sess, grad0, ids, [3]).tolist(), [True])
      # A checkpoint without filter dumps (filter enabled later) restores to empty filters.
      for f in tf.io.gfile.glob(assets + "hash_filter_1-*"):
        tf.io.gfile.remove(f)
      with tf.compat.v1.Session() as sess:
        restorer.before_restore(sess)
        self.assertEqual(_admitted_rows(sess, grad1, ids, [3]).tolist(), [False])  # 0 -> 1
        self.assertEqual(_admitted_rows(sess, grad1, ids, [3]).tolist(), [False])  # 1 -> 2
      # Legacy layout: no asset dir, the dumps sit next to the checkpoint prefix.
      with tf.compat.v1.Session() as sess:
        sess.run(grad0, {ids: [4]})  # id 4: count 1
        sess.run(hash_filter_ops.save_hash_filter(filters[0], basename + "-0hash_filter_0"))
      tf.io.gfile.rmtree(assets)
      with tf.compat.v1.Session() as sess:
        restorer.before_restore(sess)
        self.assertEqual(_admitted_rows(sess, grad0, ids, [4, 3]).tolist(), [False, False])
        self.assertEqual(_admitted_rows(sess, grad0, ids, [4]).tolist(), [True])


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
