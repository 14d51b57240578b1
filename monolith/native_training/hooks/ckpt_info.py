"""Writes, before each checkpoint save, how many embedding-table entries each fid slot holds:
<model_dir>/ckpt.info-<global_step>, a text-format CkptInfo."""

import collections
import os

import tensorflow as tf

from monolith.native_training import hash_table_ops
from monolith.native_training import hash_table_utils
from monolith.native_training.multi_hash_table_ops import _MULTI_HASH_TABLE_GRAPH_KEY
from monolith.native_training.proto import ckpt_info_pb2

_MAX_SLOT = 102400


class FidSlotCountSaverListener(tf.compat.v1.train.CheckpointSaverListener):
  """Counts the entries of every hash table by v2 slot. Create it after the tables (in the same
  graph): the counting ops are built at construction."""

  def __init__(self, model_dir: str):
    self._model_dir = model_dir
    all_tables = tf.compat.v1.get_collection(hash_table_ops._HASH_TABLE_GRAPH_KEY)  # pylint: disable=protected-access
    self.all_multi_hash_tables = tf.compat.v1.get_collection(_MULTI_HASH_TABLE_GRAPH_KEY)
    if not all_tables and not self.all_multi_hash_tables:
      raise ValueError("Unable to find hash tables. It may be caused by creating the listener "
                       "before calling model_fn")
    tables_by_device = collections.defaultdict(list)
    for table in all_tables:
      tables_by_device[table.table.device].append(table)

    count_ops, self._count_vars = [], []
    for device, tables in tables_by_device.items():
      with tf.device(device):
        count_var = tf.compat.v1.get_variable(
            "monolith_fid_slot_count/" + device.replace(":", "_"),
            shape=[_MAX_SLOT],
            dtype=tf.int64,
            initializer=tf.compat.v1.zeros_initializer(),
            collections=[],  # not checkpointed
            use_resource=True)
        self._count_vars.append(count_var)

        def apply_fn(entry, count_var=count_var):
          slot = hash_table_ops.extract_slot_from_entry(entry)
          slot = tf.minimum(tf.cast(slot, tf.int64), _MAX_SLOT - 1)
          ones = tf.ones_like(slot)
          counts = tf.scatter_nd(tf.expand_dims(slot, -1), ones, [_MAX_SLOT])
          return count_var.assign_add(counts, use_locking=True)

        for table in tables:
          count_ops.extend(_call_and_collect_ops(hash_table_utils.iterate_table_and_apply, table,
                                                 apply_fn))
    self._count_op = tf.group(count_ops)
    self._init_op = tf.group([v.initializer for v in self._count_vars])

  def before_save(self, session, global_step_value):
    if self.all_multi_hash_tables:
      return
    session.run(self._init_op)
    session.run(self._count_op)
    counts = sum(session.run(self._count_vars)) if self._count_vars else []
    info = ckpt_info_pb2.CkptInfo()
    for slot, count in enumerate(counts):
      if count:
        info.slot_counts[slot] = int(count)
    tf.io.gfile.makedirs(self._model_dir)
    with tf.io.gfile.GFile(
        os.path.join(self._model_dir, "ckpt.info-{}".format(global_step_value)), "w") as f:
      f.write(str(info))


def _call_and_collect_ops(fn, *args):
  """The ops that calling the tf.function `fn` adds to the graph: in graph mode a tf.function
  without outputs returns None, not its call op, so there is nothing else to depend on."""
  graph = tf.compat.v1.get_default_graph()
  num_ops = len(graph.get_operations())
  result = fn(*args)
  if result is not None:
    return [result]
  return graph.get_operations()[num_ops:]
