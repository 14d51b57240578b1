import os

from google.protobuf import text_format
import numpy as np
import tensorflow as tf

from monolith.native_training import hash_filter_ops
from monolith.native_training import multi_hash_table_ops
from monolith.native_training import test_utils
from monolith.native_training.multi_hash_table_ops import MultiHashTable
from monolith.native_training.proto import ckpt_info_pb2
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2
from monolith.native_training.runtime.ops import gen_monolith_ops


def _tables(dims, suffix="test"):
  configs = {name: test_utils.generate_test_hash_table_config(d) for name, d in dims.items()}
  return MultiHashTable.from_configs(configs, name_suffix=suffix)


class MultiHashTableOpsTest(tf.test.TestCase):

  def test_lookup_assign_add_reinitialize(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      # Writes return tables whose handle depends on the write: running a lookup of the chained
      # table would run the writes again, so the writes run once and lookups use `base`.
      base = _tables({"slot0": 1, "slot1": 2, "slot2": 2})
      self.assertEqual(base.table_names, ["slot0", "slot1", "slot2"])
      self.assertEqual(base.get_table_dim_sizes(), [1, 2, 2])
      m = base.assign_add({
          "slot0": ([1], [[1.0]]),
          "slot1": ([2, 3], [[1.0, 2.0], [3.0, 4.0]]),
          "slot2": ([2, 3], [[5.0, 6.0], [7.0, 8.0]]),
      })
      sess.run(m.assign_add({"slot0": ([1], [[2.5]])}).as_op())
      got = sess.run(base.lookup({"slot0": [1, 9], "slot1": [3, 2], "slot2": [2]}))
      np.testing.assert_allclose(got["slot0"], [[3.5], [0.0]])
      np.testing.assert_allclose(got["slot1"], [[3, 4], [1, 2]])
      np.testing.assert_allclose(got["slot2"], [[5, 6]])
      _, status = base.reinitialize("slot2", [1, 2, 3])
      self.assertEqual(sess.run(status).tolist(), [0, 1, 1])
      got = sess.run(base.lookup({"slot2": [1, 2, 3], "slot1": [2]}))
      np.testing.assert_allclose(got["slot2"], np.zeros([3, 2]))
      np.testing.assert_allclose(got["slot1"], [[1, 2]])  # other tables untouched
      _, unknown = base.reinitialize("slot3", [1, 2, 3])
      self.assertEqual(sess.run(unknown).tolist(), [-1, -1, -1])
      entries = sess.run(base.lookup_entry({"slot1": [2, 5]}))["slot1"]
      dump = embedding_hash_table_pb2.EntryDump.FromString(entries[0])
      self.assertEqual(list(dump.num), [1.0, 2.0])
      self.assertEqual(entries[1], b"")

  def test_apply_gradients(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"slot0": 1, "slot1": 2})
      step = tf.constant(0, tf.int64)
      m = m.apply_gradients({"slot0": ([0], 2.0), "slot1": ([1, 2], [[1, 3], [2, 4]])}, step)
      got = sess.run(m.lookup({"slot0": [0], "slot1": [1, 2]}))
      np.testing.assert_allclose(got["slot0"], [[-2]])
      np.testing.assert_allclose(got["slot1"], [[-1, -3], [-2, -4]])

  def test_assign_with_hash_filter(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      threshold = embedding_hash_table_pb2.SlotOccurrenceThresholdConfig(
          default_occurrence_threshold=1).SerializeToString()
      f = hash_filter_ops.create_hash_filter(100, 7, threshold, name_suffix="_multi")
      m = MultiHashTable.from_configs({
          "a": test_utils.generate_test_hash_table_config(1),
          "b": test_utils.generate_test_hash_table_config(1)
      }, hash_filter=f,
                                      name_suffix="filtered")
      # The filter is shared by the tables (one per PS) and counts ids, so each table gets its own.
      assign = m.assign({"a": ([1], [[1.0]]), "b": ([2], [[2.0]])}).as_op()
      lookup = m.lookup({"a": [1], "b": [2]})
      sess.run(assign)  # first sight of ids 1 and 2: filtered
      got = sess.run(lookup)
      self.assertEqual([got["a"][0][0], got["b"][0][0]], [0.0, 0.0])
      sess.run(assign)
      got = sess.run(lookup)
      self.assertEqual([got["a"][0][0], got["b"][0][0]], [1.0, 2.0])

  def test_save_restore(self):
    basename = os.path.join(self.get_temp_dir(), "save_restore", "mtable")
    with tf.Graph().as_default():
      m = _tables({"slot0": 1, "slot1": 2}, suffix="saved")
      fill = m.assign({"slot0": ([1, 2], [[1.0], [2.0]]), "slot1": ([3], [[3.0, 4.0]])}).as_op()
      with tf.compat.v1.Session() as sess:
        sess.run(fill)
        sess.run(m.save(basename).as_op())
        features, counts = sess.run(multi_hash_table_ops.feature_stat(basename))
      self.assertEqual(dict(zip(features.tolist(), counts.tolist())), {
          b"slot0": 2,
          b"slot1": 1
      })
      self.assertTrue(tf.io.gfile.exists(basename + "-00000-of-00001"))
      self.assertTrue(tf.io.gfile.exists(basename + ".meta-00000-of-00001"))
    # A graph whose table set changed: slot1 is restored, slot2 (new) keeps its rows, slot0 (gone)
    # is skipped.
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"slot1": 2, "slot2": 1}, suffix="restored")
      sess.run(m.assign({"slot1": ([9], [[9.0, 9.0]]), "slot2": ([5], [[5.0]])}).as_op())
      sess.run(m.restore(basename).as_op())
      got = sess.run(m.lookup({"slot1": [3, 9], "slot2": [5]}))
      np.testing.assert_allclose(got["slot1"], [[3, 4], [9, 9]])  # not cleared first
      np.testing.assert_allclose(got["slot2"], [[5]])

  def test_restore_into_other_dims_fails_and_changes_nothing(self):
    basename = os.path.join(self.get_temp_dir(), "dims", "mtable")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"a": 1, "b": 2}, suffix="dims")
      sess.run(m.assign({"a": ([1], [[1.0]]), "b": ([1], [[1.0, 2.0]])}).as_op())
      sess.run(m.save(basename).as_op())
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"a": 1, "b": 3}, suffix="dims3")
      sess.run(m.assign({"a": ([1], [[7.0]])}).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "Unable to restore table b"):
        sess.run(m.restore(basename).as_op())
      np.testing.assert_allclose(sess.run(m.lookup({"a": [1]}))["a"], [[7.0]])

  def test_restore_missing_checkpoint_names_it(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"a": 1}, suffix="missing")
      missing = os.path.join(self.get_temp_dir(), "nothing_here")
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "nothing_here.meta"):
        sess.run(m.restore(missing).as_op())

  def test_save_restore_hook(self):
    model_dir = os.path.join(self.get_temp_dir(), "hook")
    basename = os.path.join(model_dir, "model.ckpt")
    with tf.Graph().as_default():
      m = _tables({"slot0": 1, "slot1": 2}, suffix="hook")
      tf.compat.v1.train.get_or_create_global_step()
      saver = tf.compat.v1.train.Saver()
      first = m.assign({"slot0": ([1], [[1.0]]), "slot1": ([2], [[2.0, 2.0]])}).as_op()
      later = m.assign({"slot0": ([1], [[100.0]])}).as_op()
      lookup = m.lookup({"slot0": [1], "slot1": [2]})
      saver_listener = multi_hash_table_ops.MultiHashTableCheckpointSaverListener(basename)
      restorer = multi_hash_table_ops.MultiHashTableCheckpointRestorerListener(basename)
      with tf.compat.v1.Session() as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        restorer.before_restore(sess)  # no checkpoint: creates the tables, restores nothing
        sess.run(first)
        saver_listener.before_save(sess, 10)
        saver.save(sess, basename, global_step=10)
        sess.run(later)
        restorer.before_restore(sess)  # the restore overrides the later update
        got = sess.run(lookup)
        np.testing.assert_allclose(got["slot0"], [[1.0]])
        np.testing.assert_allclose(got["slot1"], [[2.0, 2.0]])
      info = text_format.Parse(
          tf.io.gfile.GFile(os.path.join(model_dir, "ckpt.info-10")).read(),
          ckpt_info_pb2.CkptInfo())
      self.assertEqual(dict(info.feature_counts), {"slot0": 1, "slot1": 1})
      self.assertTrue(
          tf.io.gfile.exists(basename + "-10.assets/MonolithMultiHashTable_hook-00000-of-00001"))

  def test_meta_graph_export(self):
    with tf.Graph().as_default():
      m = _tables({"slot0": 1, "slot1": 2}, suffix="export")
      meta_graph = tf.compat.v1.train.export_meta_graph()
    with tf.Graph().as_default() as graph:
      tf.compat.v1.train.import_meta_graph(meta_graph)
      (imported,) = graph.get_collection(multi_hash_table_ops._MULTI_HASH_TABLE_GRAPH_KEY)
      self.assertEqual(imported.table_names, ["slot0", "slot1"])
      self.assertEqual(imported.get_table_dim_sizes(), [1, 2])
      self.assertEqual(imported.shared_name, "MonolithMultiHashTable_export")
      with tf.compat.v1.Session() as sess:
        sess.run(imported.assign({"slot1": ([4], [[1.0, 2.0]])}).as_op())
        np.testing.assert_allclose(sess.run(imported.lookup({"slot1": [4]}))["slot1"], [[1, 2]])
      self.assertEqual(m.to_proto().handle_tensor, imported.to_proto().handle_tensor)

  def test_read_and_is_initialized(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"a": 1}, suffix="read")
      read = gen_monolith_ops.read_monolith_multi_hash_table(
          shared_name="MonolithMultiHashTable_read")
      initialized = gen_monolith_ops.is_hash_table_initialized(read)
      self.assertFalse(sess.run(initialized))
      sess.run(m.initializer)
      self.assertTrue(sess.run(initialized))

  def test_bad_inputs(self):
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
      m = _tables({"a": 1, "b": 2}, suffix="bad")
      with self.assertRaisesRegex(ValueError, r"Unknown tables \['c'\]"):
        m.lookup({"c": [1]})
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "id_split must hold num_tables \\+ 1 = 3"):
        sess.run(
            gen_monolith_ops.monolith_multi_hash_table_lookup(m.handle, [1, 2], tf.constant(
                [0, 2], tf.int64)))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "must be non-decreasing"):
        sess.run(
            gen_monolith_ops.monolith_multi_hash_table_lookup(m.handle, [1, 2], tf.constant(
                [0, 3, 2], tf.int64)))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  r"value must hold .* = 3 floats, got shape \[2\]"):
        sess.run(m.assign({"a": ([1], [[1.0]]), "b": ([1], [[1.0]])}).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "Unable to parse config"):
        sess.run(
            gen_monolith_ops.create_monolith_multi_hash_table(
                filter_handle=hash_filter_ops.create_dummy_hash_filter(),
                sync_client_handle=gen_monolith_ops.monolith_dummy_sync_client(),
                config=b"\xff",
                shared_name="broken"))


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
