import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from monolith.native_training import basic_restore_hook
from monolith.native_training import entry
from monolith.native_training import hash_filter_ops
from monolith.native_training import hash_table_ops as ops
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2


def _get_id_tensor(x):
  return tf.constant(x, dtype=tf.int64)


def test_hash_table(*args, **kwargs):
  """ops.test_hash_table inside name scope `scope`, round-tripped through its proto."""
  with tf.name_scope("scope") as scope:
    table = ops.test_hash_table(*args, **kwargs)
    proto = table.to_proto(export_scope=scope)
    return ops.HashTable.from_proto(proto, import_scope=scope)


def _config(dim, opt_setter, lr=1.0, expire_time=36500):
  c = embedding_hash_table_pb2.EmbeddingHashTableConfig()
  c.cuckoo.SetInParent()
  seg = c.entry_config.segments.add()
  seg.dim_size = dim
  opt_setter(seg.opt_config)
  seg.init_config.zeros.SetInParent()
  seg.comp_config.fp32.SetInParent()
  c.slot_expire_time_config.default_expire_time = expire_time
  return entry.HashTableConfigInstance(c, [lr])


def _timed_updates(table, ids, req_times, use_gradients):
  """Chains one update per id, adding value id (by assign_add, or its negation by an SGD step
  with lr 1) at request time `req_times[k]` (None: no request time)."""
  for i, t in zip(ids, req_times):
    value = tf.constant([[float(i)]])
    req = None if t is None else _get_id_tensor(t)
    if use_gradients:
      table = table.apply_gradients(_get_id_tensor([i]), value, global_step=_get_id_tensor(0),
                                    req_time=req)
    else:
      table = table.assign_add(_get_id_tensor([i]), value, req_time=req)
  return table


class HashTableOpsTest(tf.test.TestCase):

  def test_basic(self):
    with self.session() as sess:
      table = ops.vocab_hash_table(3, 1)
      table = table.assign_add(_get_id_tensor([0, 1]), tf.constant([[1], [1]],
                                                                   dtype=tf.float32))
      embeddings = table.lookup(_get_id_tensor([0, 1, 2]))
      size = table.size()
      self.assertAllEqual(sess.run(embeddings), [[1], [1], [0]])
      self.assertEqual(sess.run(size), 2)
      self.assertNotEqual(table.name, "MonolithHashTable")

  def test_assign(self):
    with self.session() as sess:
      table = test_hash_table(1)
      table = table.assign(_get_id_tensor([0, 1]), tf.ones([2, 1]))
      emb1 = table.lookup(_get_id_tensor([0, 1, 2]))
      with tf.control_dependencies([emb1]):
        table = table.assign(_get_id_tensor([1]), tf.constant([5.0]))
      emb2 = table.lookup(_get_id_tensor([0, 1, 2]))
      e1, e2 = sess.run([emb1, emb2])
      self.assertAllEqual(e1, [[1], [1], [0]])
      self.assertAllEqual(e2, [[1], [5], [0]])

  def test_lookup_entry(self):
    with self.session() as sess:
      table = test_hash_table(1)
      table = table.assign(_get_id_tensor([0, 1, 2]), [[0.1], [0.2], [0.3]])
      entries = sess.run(table.lookup_entry(_get_id_tensor([0, 1, 2, 3])))
      for i, want in enumerate([0.1, 0.2, 0.3]):
        dump = embedding_hash_table_pb2.EntryDump()
        dump.ParseFromString(entries[i])
        self.assertAllClose(dump.num, [want])
        self.assertFalse(dump.HasField("id"))
        self.assertEqual(dump.opt.dump[0].WhichOneof("type"), "sgd")
      self.assertEqual(entries[3], b"")

  def test_save_as_tensor(self):
    with self.session() as sess:
      table = test_hash_table(1)
      table = table.assign(_get_id_tensor([0, 1, 2]), [[0.1], [0.2], [0.3]])
      offset, dumps = sess.run(table.save_as_tensor(0, 1, 1000, 0))
      self.assertNotEqual(offset, 0)
      ids = set()
      for d in dumps:
        dump = embedding_hash_table_pb2.EntryDump()
        dump.ParseFromString(d)
        ids.add(dump.id)
      self.assertEqual(ids, {0, 1, 2})

  def testNameConflict(self):
    test_hash_table(1, name_suffix="same_suffix")
    with self.assertRaises(ValueError):
      test_hash_table(1, name_suffix="same_suffix")

  def _gradient_step(self, lr, lookup_ids, apply_ids, global_step=0, dim=1, enable_dedup=False):
    """Rows 0 and 1 after one step on loss = -lookup(lookup_ids) applied to `apply_ids`; the
    global step variable, which a learning rate fn may read, holds `global_step`."""
    step_var = tf.compat.v1.train.get_or_create_global_step()
    table = test_hash_table(dim, learning_rate=lr)
    ids = _get_id_tensor(lookup_ids)
    embeddings = table.lookup(ids)
    loss = -embeddings
    grads = tf.gradients(loss, embeddings)
    table = table.apply_gradients(_get_id_tensor(apply_ids),
                                  grads[0],
                                  global_step=_get_id_tensor(global_step),
                                  enable_dedup=enable_dedup)
    lookup = table.lookup(_get_id_tensor([0, 1]))
    with self.session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(step_var.assign(global_step))
      return sess.run(lookup)

  def test_gradients(self):
    self.assertAllClose(self._gradient_step(0.1, [0, 0, 1], [0, 0, 1]), [[0.2], [0.1]])

  def test_gradients_with_learning_rate_fn(self):
    self.assertAllClose(self._gradient_step(lambda: 0.1, [0, 0, 1], [0, 0, 1]), [[0.2], [0.1]])

  def test_gradients_with_learning_rate_decay(self):
    global_step = tf.compat.v1.train.get_or_create_global_step()
    decay = tf.keras.optimizers.schedules.PolynomialDecay(initial_learning_rate=0.01,
                                                          decay_steps=10,
                                                          end_learning_rate=0.11)
    self.assertAllClose(
        self._gradient_step(lambda: decay(global_step), [0, 0, 1], [0, 0, 1], global_step=1),
        [[0.04], [0.02]])

  def test_gradients_with_dedup(self):
    values = self._gradient_step(0.1, [0, 1, 0, 1, 0], [0, 1, 0, 1, 0],
                                 dim=10,
                                 enable_dedup=True)
    self.assertAllClose(values, [[0.3] * 10, [0.2] * 10])

  def test_gradients_with_different_ids(self):
    self.assertAllClose(self._gradient_step(0.1, [0, 0, 1], [1, 0, 1]), [[0.1], [0.2]])

  def test_gradients_change_exactly_touched_rows(self):
    """A loss through lookup moves only the looked-up rows, by -lr * dloss/demb."""
    with self.session() as sess:
      table = test_hash_table(3, learning_rate=0.5)
      all_ids = _get_id_tensor([10, 11, 12, 13])
      init = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
      table = table.assign(all_ids, init)
      ids = _get_id_tensor([11, 13, 11])
      emb = table.lookup(ids)
      weights = tf.constant([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0], [2.0, 2.0, 2.0]])
      loss = tf.reduce_sum(emb * weights)
      grads = tf.gradients(loss, emb)[0]
      table = table.apply_gradients(ids, grads, global_step=_get_id_tensor(0))
      after = sess.run(table.lookup(all_ids))
      expected = init.copy()
      expected[1] -= 0.5 * (np.array([1, 2, 3]) + np.array([2, 2, 2]))
      expected[3] -= 0.5 * np.array([-1, 0.5, 0])
      self.assertAllClose(after, expected)

  def test_gradients_with_hash_filter(self):
    with self.session() as sess:
      table = test_hash_table(1, enable_hash_filter=True, occurrence_threshold=3,
                              learning_rate=0.1)
      ids = _get_id_tensor([0, 0, 1])
      embeddings = table.lookup(ids)
      grads = tf.gradients(-embeddings, embeddings)
      update = table.apply_gradients(ids, grads[0], global_step=_get_id_tensor(0))
      values = update.lookup(_get_id_tensor([0, 1]))
      for want in [[[0], [0]], [[0.1], [0]], [[0.3], [0]], [[0.5], [0.1]]]:
        self.assertAllClose(sess.run(values), want)

  def test_probabilistic_filter(self):
    """Threshold 1 admits every new id; a huge threshold (almost) none."""
    for threshold, want_admitted in [(1, 100), (1 << 30, 0)]:
      with tf.Graph().as_default(), self.session() as sess:
        config = embedding_hash_table_pb2.SlotOccurrenceThresholdConfig(
            default_occurrence_threshold=threshold).SerializeToString()
        filters = hash_filter_ops.create_hash_filters(
            0, True, config, filter_type=hash_filter_ops.FilterType.PROBABILISTIC_FILTER)
        table = ops.hash_table_from_config(_config(1, lambda o: o.sgd.SetInParent()),
                                           hash_filter=filters[0],
                                           name_suffix="prob")
        sess.run(table.assign(_get_id_tensor(list(range(100))), tf.ones([100, 1])).as_op())
        self.assertEqual(sess.run(table.size()), want_admitted)

  def _save_path(self, name):
    return os.path.join(self.get_temp_dir(), name)

  def test_save_restore(self):
    basename = self._save_path("test_save_restore/table")
    with tf.Graph().as_default(), self.session() as sess:
      table = test_hash_table(1)
      table = table.assign_add(_get_id_tensor([-1, 1]), tf.constant([[1], [2]], tf.float32))
      sess.run(table.save(basename).as_op())
    with tf.Graph().as_default(), self.session() as sess:
      table = test_hash_table(1)
      table = table.restore(basename)
      self.assertAllEqual(sess.run(table.lookup(_get_id_tensor([-1, 1]))), [[1], [2]])

  def test_restore_from_another_table(self):
    basename = self._save_path("another/table")
    with tf.Graph().as_default(), self.session() as sess:
      table1 = test_hash_table(1)
      table1 = table1.assign_add(_get_id_tensor([1]), tf.constant([[1]], tf.float32))
      sess.run(table1.save(basename).as_op())
      table2 = test_hash_table(1, extra_restore_names=[table1.name])
      table2 = table2.restore(basename)
      self.assertAllEqual(sess.run(table2.lookup(_get_id_tensor([1]))), [[1]])

  def _eviction_case(self, use_gradients, req_times, expire_time=1):
    basename = self._save_path("eviction_%d/table" % use_gradients)
    with tf.Graph().as_default(), self.session() as sess:
      table = _timed_updates(test_hash_table(1, expire_time=expire_time), [1, 2, 3], req_times,
                             use_gradients)
      sess.run(table.save(basename).as_op())
    with tf.Graph().as_default(), self.session() as sess:
      table = test_hash_table(1).restore(basename)
      return sess.run(table.lookup(_get_id_tensor([1, 2, 3])))

  def test_save_restore_with_feature_eviction_assign_add(self):
    m = 10000000
    self.assertAllEqual(self._eviction_case(False, [m - 86400 - 1, m - 86400 + 1, m]),
                        [[0], [2], [3]])

  def test_save_restore_with_feature_eviction_apply_gradients(self):
    m = 10000000
    self.assertAllEqual(self._eviction_case(True, [m - 86400 - 1, m - 86400 + 1, m]),
                        [[0], [-2], [-3]])

  def test_entry_ttl_zero(self):
    self.assertAllEqual(self._eviction_case(False, [None, None, None], expire_time=0),
                        [[0], [0], [0]])

  def test_entry_ttl_not_zero(self):
    self.assertAllEqual(self._eviction_case(False, [None, None, None], expire_time=3600),
                        [[1], [2], [3]])

  def test_entry_ttl_by_slots(self):
    basename = self._save_path("ttl_by_slots/table")
    basename2 = self._save_path("ttl_by_slots/table2")
    ids = [1 << 48, 2 << 48]
    config = _config(1, lambda o: o.sgd.SetInParent(), expire_time=3600)
    expire = config.table_config.slot_expire_time_config
    expire.slot_expire_times.add(slot=1, expire_time=0)
    expire.slot_expire_times.add(slot=2, expire_time=1)
    with tf.Graph().as_default(), self.session() as sess:
      table = ops.hash_table_from_config(config, name_suffix="slots")
      table = table.assign_add(_get_id_tensor(ids), tf.constant([[1.0], [2.0]]),
                               req_time=_get_id_tensor(100))
      sess.run(table.save(basename).as_op())
      restored = ops.hash_table_from_config(config, name_suffix="slots2").restore(basename)
      self.assertAllEqual(sess.run(restored.lookup(_get_id_tensor(ids))), [[0], [2]])
      sess.run(restored.save(basename2).as_op())
      plain = test_hash_table(1).restore(basename2)
      self.assertAllEqual(sess.run(plain.lookup(_get_id_tensor(ids))), [[0], [2]])

  def test_restore_not_found(self):
    with self.session() as sess:
      table = test_hash_table(1).restore(self._save_path("not_found/table"))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "There is no valid sharded files"):
        sess.run(table.as_op())

  def test_restore_with_different_dim_fails_and_keeps_table(self):
    basename = self._save_path("dim_mismatch/table")
    with tf.Graph().as_default(), self.session() as sess:
      table = test_hash_table(2)
      sess.run(table.assign(_get_id_tensor([7]), [[1.0, 2.0]]).save(basename).as_op())
    with tf.Graph().as_default(), self.session() as sess:
      table = test_hash_table(3)
      sess.run(table.assign(_get_id_tensor([8]), [[3.0, 4.0, 5.0]]).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "embedding has 2 values, expected dim 3"):
        sess.run(table.restore(basename).as_op())
      self.assertAllEqual(sess.run(table.lookup(_get_id_tensor([8, 7]))),
                          [[3, 4, 5], [0, 0, 0]])
      self.assertEqual(sess.run(table.size()), 1)

  def test_corrupted_checkpoint(self):
    basename = self._save_path("corrupt/table")
    os.makedirs(os.path.dirname(basename), exist_ok=True)
    with tf.io.TFRecordWriter(basename + "-00000-of-00001") as w:
      w.write(b"\x0a\xff")
    with self.session() as sess:
      table = test_hash_table(1)
      with self.assertRaisesRegex(tf.errors.FailedPreconditionError, "Unable to parse data"):
        sess.run(table.restore(basename).as_op())

  def test_save_restore_with_hash_table_clear_logic(self):
    basename = self._save_path("clear_logic/table")
    with self.session() as sess:
      table = test_hash_table(1)
      sess.run(table.assign_add(_get_id_tensor([0]), [[1.0]]).save(basename).as_op())
      sess.run(table.assign_add(_get_id_tensor([1]), [[1.0]]).as_op())
      sess.run(table.restore(basename).as_op())
      self.assertAllEqual(sess.run(table.lookup(_get_id_tensor([0, 1]))), [[1], [0]])

  def test_two_hash_table_whose_name_is_prefix(self):
    d = self._save_path("prefix")
    with self.session() as sess:
      t1 = test_hash_table(1)
      t10 = test_hash_table(1)
      sess.run(t1.assign(_get_id_tensor([1]), [[1.0]]).save(d + "/table1").as_op())
      sess.run(t10.assign(_get_id_tensor([1]), [[10.0]]).save(d + "/table10").as_op())
      r1 = test_hash_table(1).restore(d + "/table1")
      r10 = test_hash_table(1).restore(d + "/table10")
      self.assertAllEqual(sess.run(r1.lookup(_get_id_tensor([1]))), [[1]])
      self.assertAllEqual(sess.run(r10.lookup(_get_id_tensor([1]))), [[10]])

  def test_save_restore_hook(self):
    model_dir = self._save_path("hook")
    basename = os.path.join(model_dir, "model.ckpt")
    with tf.Graph().as_default():
      global_step = tf.compat.v1.train.get_or_create_global_step()
      table = test_hash_table(1)
      add_one = table.assign_add(_get_id_tensor([0]), [[1.0]]).as_op()
      minus_one = table.assign_add(_get_id_tensor([0]), [[-1.0]]).as_op()
      lookup = table.lookup(_get_id_tensor([0]))
      saver_listener = ops.HashTableCheckpointSaverListener(basename)
      restorer_listener = ops.HashTableCheckpointRestorerListener(basename)
      saver = tf.compat.v1.train.Saver()
      saver_hook = tf.compat.v1.train.CheckpointSaverHook(model_dir,
                                                          save_steps=1000,
                                                          saver=saver,
                                                          listeners=[saver_listener])
      with tf.compat.v1.train.SingularMonitoredSession(hooks=[saver_hook]) as sess:
        sess.run(add_one)
        saver_hook._save(sess.raw_session(), 0)
        sess.run(minus_one)
        self.assertAllEqual(sess.run(lookup), [[0]])
      restore_hook = basic_restore_hook.CheckpointRestorerHook(listeners=[restorer_listener])
      with tf.compat.v1.train.SingularMonitoredSession(hooks=[restore_hook]) as sess:
        self.assertAllEqual(sess.run(lookup), [[1]])

  def _hook_eviction_case(self, name, use_gradients, req_times):
    """Values before and after a save (through the listeners) + restore, expire time 1 day."""
    model_dir = self._save_path(name)
    basename = os.path.join(model_dir, "model.ckpt")
    with tf.Graph().as_default():
      tf.compat.v1.train.get_or_create_global_step()
      base = test_hash_table(1, expire_time=1)
      ids = list(range(1, len(req_times) + 1))
      update = _timed_updates(base, ids, req_times, use_gradients).as_op()
      # Looks up `base` so that the lookup does not re-run the chained updates.
      lookup = base.lookup(_get_id_tensor(ids))
      saver_hook = tf.compat.v1.train.CheckpointSaverHook(
          model_dir,
          save_steps=1000,
          saver=tf.compat.v1.train.Saver(),
          listeners=[ops.HashTableCheckpointSaverListener(basename)])
      restore_hook = basic_restore_hook.CheckpointRestorerHook(
          listeners=[ops.HashTableCheckpointRestorerListener(basename)])
      with tf.compat.v1.train.SingularMonitoredSession(hooks=[saver_hook]) as sess:
        sess.run(update)
        before = sess.run(lookup)
        saver_hook._save(sess.raw_session(), 0)
      with tf.compat.v1.train.SingularMonitoredSession(hooks=[restore_hook]) as sess:
        after = sess.run(lookup)
      sign = -1 if use_gradients else 1
      self.assertAllEqual(before, [[sign * i] for i in ids])
      return after

  def test_save_restore_hook_with_feature_eviction_assign_add(self):
    m = 10000000
    self.assertAllEqual(
        self._hook_eviction_case("hook_evict_add", False, [m - 86400 - 1, m - 86400 + 1, m]),
        [[0], [2], [3]])

  def test_save_restore_hook_with_feature_eviction_apply_gradients(self):
    m = 10000000
    self.assertAllEqual(
        self._hook_eviction_case("hook_evict_grad", True, [m - 86400 - 1, m - 86400 + 1, m]),
        [[0], [-2], [-3]])

  def test_save_restore_hook_with_no_req_time_feature_eviction_apply_gradients(self):
    self.assertAllEqual(self._hook_eviction_case("hook_no_req", True, [None, None]),
                        [[-1], [-2]])

  def test_save_restore_hook_with_same_req_time_feature_eviction_apply_gradients(self):
    self.assertAllEqual(self._hook_eviction_case("hook_same_req", True, [100, 100]),
                        [[-1], [-2]])

  def test_restore_after_save(self):
    model_dir = self._save_path("restore_after_save")
    basename = os.path.join(model_dir, "model.ckpt")
    with tf.Graph().as_default():
      tf.compat.v1.train.get_or_create_global_step()
      table = test_hash_table(1)
      add_one = table.assign_add(_get_id_tensor([0]), [[1.0]]).as_op()
      assign_two = table.assign(_get_id_tensor([0]), [[2.0]]).as_op()
      lookup = table.lookup(_get_id_tensor([0]))

      class AssignSaverListener(tf.compat.v1.train.CheckpointSaverListener):

        def after_save(self, session, global_step_value):
          session.run(assign_two)

      listeners = [
          ops.HashTableCheckpointSaverListener(basename),
          AssignSaverListener(),
          ops.HashTableRestorerSaverListener(basename),
      ]
      saver_hook = tf.compat.v1.train.CheckpointSaverHook(model_dir,
                                                          save_steps=1000,
                                                          saver=tf.compat.v1.train.Saver(),
                                                          listeners=listeners)
      with tf.compat.v1.train.SingularMonitoredSession(hooks=[saver_hook]) as sess:
        sess.run(add_one)
        saver_hook._save(sess.raw_session(), 0)
        self.assertAllEqual(sess.run(lookup), [[1]])

  def test_cross_process_restore(self):
    """A checkpoint written by another process restores with identical lookups."""
    basename = self._save_path("cross_process/table")
    ids = list(range(-50, 50)) + [1 << 60, -(1 << 62)]
    script = """
import numpy as np, tensorflow as tf
tf.compat.v1.disable_eager_execution()
from monolith.native_training import hash_table_ops as ops
table = ops.test_hash_table(4, use_adagrad=True, name_suffix="cross")
ids = tf.constant(%r, dtype=tf.int64)
grads = tf.constant(np.arange(%d * 4, dtype=np.float32).reshape(-1, 4) / 7)
updated = table.apply_gradients(ids, grads, global_step=tf.constant(1, tf.int64))
with tf.compat.v1.Session() as sess:
  sess.run(updated.as_op())
  sess.run(table.save(%r).as_op())
  np.save(%r, sess.run(table.lookup(ids)))
""" % (ids, len(ids), basename, basename + ".npy")
    subprocess.run([sys.executable, "-c", script], check=True, env=dict(os.environ))
    expected = np.load(basename + ".npy")
    with self.session() as sess:
      table = ops.test_hash_table(4, use_adagrad=True, name_suffix="cross").restore(basename)
      self.assertAllEqual(sess.run(table.lookup(_get_id_tensor(ids))), expected)
      self.assertEqual(sess.run(table.size()), len(ids))

  def test_bad_inputs(self):
    with self.session() as sess:
      table = test_hash_table(2)
      with self.assertRaisesRegex((TypeError, ValueError), "id_values|int64"):
        ops.hash_table_ops.monolith_hash_table_assign(table.table, tf.constant([1], tf.int32),
                                                      [[1.0, 2.0]], tf.constant(0, tf.int64))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "id_updates"):
        sess.run(table.assign(_get_id_tensor([1, 2]), [[1.0, 2.0]]).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "The dim doesn't match expectation"):
        sess.run(table.assign_add(_get_id_tensor([1]), tf.constant([[1.0, 2.0, 3.0]])).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "id_updates"):
        sess.run(
            table.apply_gradients(_get_id_tensor([1]), tf.constant([[1.0]]),
                                  global_step=_get_id_tensor(0)).as_op())
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "dim_size should match hash table size"):
        sess.run(
            ops.hash_table_ops.monolith_hash_table_lookup(table.table, _get_id_tensor([1]),
                                                          dim_size=3))

  def test_unknown_optimizer_config(self):
    config = _config(1, lambda o: o.group_ftrl.SetInParent())
    with self.session() as sess:
      table = ops.hash_table_from_config(config, name_suffix="bad_opt")
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                  "optimizer is not implemented yet"):
        sess.run(table.as_op())
    with self.session() as sess:
      handle = ops.hash_table_ops.monolith_hash_table(
          filter_handle=hash_filter_ops.create_dummy_hash_filter(),
          sync_client_handle=ops.distributed_serving_ops.create_dummy_sync_client(),
          config=b"\xff\xff",
          shared_name="garbage_config")
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "Unable to parse config"):
        sess.run(handle)

  def test_multi_threaded_lookup_and_optimize(self):
    with self.session() as sess:
      table = test_hash_table(8, learning_rate=1.0)
      ids = _get_id_tensor(np.arange(5000) % 1000)
      grads = tf.ones([5000, 8])
      table = table.apply_gradients(ids, grads, global_step=_get_id_tensor(0),
                                    use_multi_threads=True)
      values = sess.run(table.lookup(_get_id_tensor(np.arange(1000)), use_multi_threads=True))
      self.assertAllClose(values, -5 * np.ones([1000, 8]))

  def test_fused_lookup(self):
    with self.session() as sess:
      t0, t1, t2 = test_hash_table(1), test_hash_table(1), test_hash_table(2)
      t0 = t0.assign(_get_id_tensor([0, 1]), [[1.0], [1.0]])
      t1 = t1.assign(_get_id_tensor([3, 4]), [[0.0], [0.0]])
      t2 = t2.assign(_get_id_tensor([6, 7]), [[1.0, 1.0], [1.0, 1.0]])
      with tf.control_dependencies([t0.as_op(), t1.as_op(), t2.as_op()]):
        result = ops.fused_lookup([t0, t1, t2],
                                  _get_id_tensor([0, 4, 6, 1, 3, 7]),
                                  tf.constant([1] * 6, dtype=tf.int32),
                                  num_of_shards=2)
      emb, splits, id_offsets, emb_offsets, indices = sess.run(result)
      self.assertAllEqual(emb, [1, 0, 1, 1, 1, 0, 1, 1])
      self.assertAllEqual(splits, [4, 4])
      self.assertAllEqual(id_offsets, [0, 1, 2, 3, 4, 5, 6])
      self.assertAllEqual(emb_offsets, [0, 1, 2, 4, 5, 6, 8])
      self.assertAllEqual(indices, [0, 4, 6, 1, 3, 7])

  def test_fused_optimize(self):
    with self.session() as sess:
      t0, t1 = test_hash_table(1), test_hash_table(2)
      ids = _get_id_tensor([0, 4, 1, 3])
      sizes = tf.constant([1, 1, 1, 1], dtype=tf.int32)
      handles = ops.fused_apply_gradient([t0, t1],
                                         ids,
                                         ids,
                                         sizes,
                                         tf.constant([-1.0, -2, -2, -1, -2, -2]),
                                         tf.constant([0, 1, 2, 3, 4], tf.int32),
                                         tf.constant([0, 1, 3, 4, 6], tf.int32),
                                         tf.constant([0.1, 0.1]),
                                         _get_id_tensor(0),
                                         _get_id_tensor(0),
                                         num_of_shards=2)
      with tf.control_dependencies(handles):
        result = ops.fused_lookup([t0, t1], ids, sizes, num_of_shards=2)
      emb, splits, id_offsets, emb_offsets, _ = sess.run(result)
      self.assertAllClose(emb, [0.1, 0.2, 0.2, 0.1, 0.2, 0.2])
      self.assertAllEqual(splits, [3, 3])
      self.assertAllEqual(id_offsets, [0, 1, 2, 3, 4])
      self.assertAllEqual(emb_offsets, [0, 1, 3, 4, 6])
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "fused_slot_size sums to"):
        sess.run(ops.fused_lookup([t0, t1], ids, tf.constant([1, 1, 1, 2], tf.int32), 2))

  def test_batch_softmax_optimizer(self):
    config = _config(1, lambda o: o.batch_softmax.SetInParent(), lr=0.1)
    with self.session() as sess:
      table = ops.hash_table_from_config(config, name_suffix="batch_softmax")
      step = tf.compat.v1.placeholder(tf.int64, [])
      ids = tf.compat.v1.placeholder(tf.int64, [None])
      update = table.apply_gradients(ids, tf.zeros([tf.size(ids), 1]), global_step=step).as_op()
      for s in range(1000):
        touched = [i for i, every in [(0, 5), (1, 10)] if s % every == 0]
        if touched:
          sess.run(update, feed_dict={step: s, ids: touched})
      value = sess.run(table.lookup(_get_id_tensor([0, 1])))
      self.assertAllClose(1 / np.maximum(value, 1), [[0.2], [0.1]], atol=0.01)

  def test_lookup_gradient(self):
    with self.session() as sess:
      ids, grads = sess.run(
          ops.hash_table_ops.monolith_hash_table_lookup_gradient(
              _get_id_tensor([[1, 0], [0, 0], [1, 5]]), _get_id_tensor([7, 8, 9]),
              tf.constant([[1.0, 2.0], [3.0, 4.0]])))
      self.assertAllEqual(ids, [7, 8, 9])
      self.assertAllEqual(grads, [[3, 4], [1, 2], [3, 4]])
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "should be same"):
        sess.run(
            ops.hash_table_ops.monolith_hash_table_lookup_gradient(
                _get_id_tensor([[0]]), _get_id_tensor([1, 2]), tf.constant([[1.0]])))

  def test_extract_fid(self):
    dump = embedding_hash_table_pb2.EntryDump(id=1 << 48)
    with self.session() as sess:
      slots = ops.extract_slot_from_entry([dump.SerializeToString()])
      self.assertAllEqual(sess.run(slots), [1])
      v1 = ops.extract_slot_from_entry([dump.SerializeToString()], fid_v2=False)
      self.assertAllEqual(sess.run(v1), [0])

  def test_meta_graph_export(self):
    test_hash_table(1)
    meta = tf.compat.v1.train.export_meta_graph()
    self.assertIn("monolith_hash_tables", meta.collection_def)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
