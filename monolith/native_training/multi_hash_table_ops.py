"""Several named collisionless hash tables behind one resource (native_ops.md §1.15): one op per
step for all of a PS's tables instead of one per table.

Tables are addressed by name ("slot"); ids and values of all tables travel concatenated in the
resource's (sorted) table order with row splits.
"""
import os
from typing import Dict, List, Optional, Tuple

from absl import logging
from google.protobuf import text_format
import tensorflow as tf
from tensorflow.python.framework import ops

from monolith.native_training import basic_restore_hook
from monolith.native_training import distributed_serving_ops
from monolith.native_training import entry
from monolith.native_training import hash_filter_ops
from monolith.native_training import hash_table_utils
from monolith.native_training import save_utils
from monolith.native_training.multi_hash_table_ops_pb2 import MultiHashTableProto
from monolith.native_training.proto import ckpt_info_pb2
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2
from monolith.native_training.runtime.ops import gen_monolith_ops

_MULTI_HASH_TABLE_GRAPH_KEY = "monolith_multi_hash_tables"
_TIMEOUT_IN_MS = 3600 * 1000


def _zero_req_time() -> tf.Tensor:
  return tf.constant(0, dtype=tf.int64)


class MultiHashTable(object):
  """A CreateMonolithMultiHashTable resource with its tables' names, dims and learning rates.
  Write methods return a new MultiHashTable whose handle depends on the write, so that updates
  can be chained."""

  def __init__(self,
               handle: tf.Tensor = None,
               table_names: List[str] = None,
               dims: List[int] = None,
               learning_rate_tensor: tf.Tensor = None,
               shared_name: str = None,
               saver_parallel: int = -1,
               slot_expire_time_config: bytes = b"",
               initializer: tf.Operation = None,
               mtable_proto: MultiHashTableProto = None,
               import_scope: str = None):
    if mtable_proto is not None:
      graph = tf.compat.v1.get_default_graph()

      def element(name):
        return graph.as_graph_element(ops.prepend_name_scope(name, import_scope))

      self._handle = element(mtable_proto.handle_tensor)
      self._table_names = list(mtable_proto.table_names)
      self._dims = list(mtable_proto.dims)
      self._learning_rate_tensor = element(mtable_proto.learning_rate_tensor)
      self._shared_name = mtable_proto.shared_name
      self._saver_parallel = mtable_proto.saver_parallel
      self._slot_expire_time_config = mtable_proto.slot_expire_time_config
      self._initializer = element(mtable_proto.initializer_op)
      return
    self._handle = handle
    self._table_names = list(table_names)
    self._dims = list(dims)
    self._learning_rate_tensor = learning_rate_tensor
    self._shared_name = shared_name
    self._saver_parallel = saver_parallel
    self._slot_expire_time_config = slot_expire_time_config
    self._initializer = initializer if initializer is not None else handle.op
    tf.compat.v1.add_to_collection(_MULTI_HASH_TABLE_GRAPH_KEY, self)

  @classmethod
  def from_configs(cls,
                   configs: Dict[str, entry.HashTableConfigInstance],
                   hash_filter: tf.Tensor = None,
                   sync_client: tf.Tensor = None,
                   name_suffix: str = "",
                   saver_parallel: int = -1) -> "MultiHashTable":
    """One resource holding a cuckoo table per config, ordered by name."""
    names = sorted(configs)
    if not names:
      raise ValueError("MultiHashTable needs at least one table config.")
    multi_config = embedding_hash_table_pb2.MultiEmbeddingHashTableConfig()
    learning_rates = []
    for name in names:
      config = configs[name]
      if len(config.learning_rate_fns) != len(config.table_config.entry_config.segments):
        raise ValueError("Size of learning_rate_fns and size of segments must be equal for "
                         "table {}.".format(name))
      multi_config.names.append(name)
      multi_config.configs.add().CopyFrom(config.table_config)
    shared_name = "MonolithMultiHashTable_" + name_suffix
    with tf.device("/device:CPU:0"):
      if hash_filter is None:
        hash_filter = hash_filter_ops.create_dummy_hash_filter(name_suffix=name_suffix)
      if sync_client is None:
        sync_client = distributed_serving_ops.create_dummy_sync_client()
      handle = gen_monolith_ops.create_monolith_multi_hash_table(
          filter_handle=hash_filter,
          sync_client_handle=sync_client,
          config=multi_config.SerializeToString(),
          shared_name=shared_name,
          name=shared_name)
      with tf.name_scope(shared_name):
        for name in names:
          learning_rates.append(configs[name].call_learning_rate_fns())
        learning_rate_tensor = tf.concat(learning_rates, axis=0, name="learning_rates")
    return cls(handle,
               table_names=names,
               dims=[hash_table_utils.infer_dim_size(configs[n].table_config) for n in names],
               learning_rate_tensor=learning_rate_tensor,
               shared_name=shared_name,
               saver_parallel=saver_parallel)

  @property
  def handle(self) -> tf.Tensor:
    return self._handle

  @property
  def shared_name(self) -> str:
    return self._shared_name

  @property
  def table_names(self) -> List[str]:
    return list(self._table_names)

  @property
  def initializer(self) -> tf.Operation:
    return self._initializer

  def get_table_dim_sizes(self) -> List[int]:
    return list(self._dims)

  def as_op(self, name=None) -> tf.Operation:
    return tf.group(self._handle, name=name)

  def _copy_with_new_handle(self, handle: tf.Tensor) -> "MultiHashTable":
    copied = object.__new__(MultiHashTable)
    copied.__dict__.update(self.__dict__)
    copied._handle = handle
    return copied

  def _check_names(self, names) -> None:
    unknown = sorted(set(names) - set(self._table_names))
    if unknown:
      raise ValueError("Unknown tables {} (this MultiHashTable has {}).".format(
          unknown, self._table_names))

  def _flatten_ids(self, slot_to_id: Dict[str, tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
    """All tables' ids in table order (absent tables contribute none) and their row splits."""
    self._check_names(slot_to_id)
    ids, counts = [], []
    for name in self._table_names:
      if name in slot_to_id:
        flat = tf.reshape(tf.convert_to_tensor(slot_to_id[name], tf.int64), [-1])
      else:
        flat = tf.zeros([0], tf.int64)
      ids.append(flat)
      counts.append(tf.size(flat, out_type=tf.int64))
    split = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(tf.stack(counts))], axis=0)
    return tf.concat(ids, axis=0), split

  def _flatten(self, slot_to_id_and_value: Dict[str, Tuple[tf.Tensor, tf.Tensor]]):
    ids, split = self._flatten_ids({k: v[0] for k, v in slot_to_id_and_value.items()})
    values = [
        tf.reshape(tf.convert_to_tensor(slot_to_id_and_value[name][1], tf.float32), [-1])
        for name in self._table_names
        if name in slot_to_id_and_value
    ]
    return ids, split, tf.concat(values, axis=0)

  def lookup(self, slot_to_id: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """{name: [len(ids), dim] embeddings}; absent ids give zero rows."""
    ids, split = self._flatten_ids(slot_to_id)
    flat = gen_monolith_ops.monolith_multi_hash_table_lookup(self._handle, ids, split)
    sizes = [(split[i + 1] - split[i]) * dim for i, dim in enumerate(self._dims)]
    parts = tf.split(flat, tf.stack(sizes), num=len(self._dims))
    return {
        name: tf.reshape(part, [-1, dim])
        for name, dim, part in zip(self._table_names, self._dims, parts)
        if name in slot_to_id
    }

  def lookup_entry(self, slot_to_id: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """{name: serialized EntryDump per id} ("" for absent ids)."""
    ids, split = self._flatten_ids(slot_to_id)
    flat = gen_monolith_ops.monolith_multi_hash_table_lookup_entry(self._handle, ids, split)
    parts = tf.split(flat, split[1:] - split[:-1], num=len(self._dims))
    return {name: part for name, part in zip(self._table_names, parts) if name in slot_to_id}

  def assign(self,
             slot_to_id_and_value: Dict[str, Tuple[tf.Tensor, tf.Tensor]],
             req_time: tf.Tensor = None) -> "MultiHashTable":
    ids, split, values = self._flatten(slot_to_id_and_value)
    return self._copy_with_new_handle(
        gen_monolith_ops.monolith_multi_hash_table_assign(
            self._handle, ids, split, values, _zero_req_time() if req_time is None else req_time))

  def assign_add(self,
                 slot_to_id_and_value: Dict[str, Tuple[tf.Tensor, tf.Tensor]],
                 req_time: tf.Tensor = None) -> "MultiHashTable":
    ids, split, values = self._flatten(slot_to_id_and_value)
    return self._copy_with_new_handle(
        gen_monolith_ops.monolith_multi_hash_table_assign_add(
            self._handle, ids, split, values, _zero_req_time() if req_time is None else req_time))

  def reinitialize(self, slot: str, ids: tf.Tensor) -> Tuple["MultiHashTable", tf.Tensor]:
    """Re-runs the initializer of table `slot` on `ids`; status per id: 1 existed, 0 inserted,
    -1 (all) when there is no such table."""
    handle, status = gen_monolith_ops.monolith_multi_hash_table_reinitialize(
        self._handle, slot, tf.convert_to_tensor(ids, tf.int64))
    return self._copy_with_new_handle(handle), status

  def apply_gradients(self,
                      slot_to_id_and_grad: Dict[str, Tuple[tf.Tensor, tf.Tensor]],
                      global_step: tf.Tensor,
                      req_time: tf.Tensor = None) -> "MultiHashTable":
    ids, split, grads = self._flatten(slot_to_id_and_grad)
    return self._copy_with_new_handle(
        gen_monolith_ops.monolith_multi_hash_table_optimize(
            self._handle, ids, split, grads, self._learning_rate_tensor,
            _zero_req_time() if req_time is None else req_time,
            tf.cast(global_step, tf.int64)))

  def save(self, basename: tf.Tensor) -> "MultiHashTable":
    return self._copy_with_new_handle(
        gen_monolith_ops.monolith_multi_hash_table_save(
            self._handle,
            basename,
            nshards=self._saver_parallel,
            slot_expire_time_config=self._slot_expire_time_config))

  def restore(self, basename: tf.Tensor) -> "MultiHashTable":
    return self._copy_with_new_handle(
        gen_monolith_ops.monolith_multi_hash_table_restore(self._handle, basename))

  def to_proto(self, export_scope: str = None) -> Optional[MultiHashTableProto]:
    if export_scope is not None and not self._handle.name.startswith(export_scope):
      return None
    return MultiHashTableProto(
        dims=self._dims,
        slot_expire_time_config=self._slot_expire_time_config,
        table_names=self._table_names,
        learning_rate_tensor=ops.strip_name_scope(self._learning_rate_tensor.name, export_scope),
        shared_name=self._shared_name,
        saver_parallel=self._saver_parallel,
        initializer_op=ops.strip_name_scope(self._initializer.name, export_scope),
        handle_tensor=ops.strip_name_scope(self._handle.name, export_scope))

  @staticmethod
  def from_proto(mtable_proto: MultiHashTableProto, import_scope: str = None) -> "MultiHashTable":
    return MultiHashTable(mtable_proto=mtable_proto, import_scope=import_scope)


ops.register_proto_function(_MULTI_HASH_TABLE_GRAPH_KEY,
                            proto_type=MultiHashTableProto,
                            to_proto=MultiHashTable.to_proto,
                            from_proto=MultiHashTable.from_proto)


def feature_stat(basename: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """(table names, entry counts) of a saved multi hash table, summed over its shards."""
  return gen_monolith_ops.monolith_multi_hash_table_feature_stat(basename)


class MultiHashTableCheckpointSaverListener(tf.compat.v1.train.CheckpointSaverListener):
  """Saves every multi hash table of the graph to `<checkpoint asset dir><shared name>` before
  the checkpoint index is written; with write_ckpt_info, also writes
  `<model dir>/ckpt.info-<step>` (CkptInfo.feature_counts: table name -> entries saved)."""

  def __init__(self, basename: str, write_ckpt_info: bool = True):
    self._helper = save_utils.SaveHelper(basename)
    self._model_dir = os.path.dirname(basename)
    self._write_ckpt_info = write_ckpt_info
    self._mtables = tf.compat.v1.get_collection(_MULTI_HASH_TABLE_GRAPH_KEY)
    with tf.name_scope("multi_hash_table_saver"):
      self._basename = tf.compat.v1.placeholder(tf.string, shape=[])
      self._save_ops = [
          m.save(self._basename + m.shared_name).as_op() for m in self._mtables
      ]
      self._stats = [feature_stat(self._basename + m.shared_name) for m in self._mtables]

  def before_save(self, sess, global_step_value):
    asset_dir = self._helper.get_ckpt_asset_dir(self._helper.get_ckpt_prefix(global_step_value))
    tf.io.gfile.makedirs(asset_dir)
    logging.info("Saving %d multi hash tables to %s.", len(self._mtables), asset_dir)
    options = tf.compat.v1.RunOptions(timeout_in_ms=_TIMEOUT_IN_MS)
    sess.run(self._save_ops, feed_dict={self._basename: asset_dir}, options=options)
    if not self._write_ckpt_info:
      return
    info = ckpt_info_pb2.CkptInfo()
    for features, counts in sess.run(self._stats, feed_dict={self._basename: asset_dir}):
      for feature, count in zip(features, counts):
        info.feature_counts[feature.decode()] += int(count)
    tf.io.gfile.makedirs(self._model_dir)
    path = os.path.join(self._model_dir, "ckpt.info-{}".format(global_step_value))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write(text_format.MessageToString(info))


class MultiHashTableCheckpointRestorerListener(basic_restore_hook.CheckpointRestorerListener):
  """Creates every multi hash table (runs their initializers), then restores them from the
  latest checkpoint's asset dir; without a checkpoint the tables start empty."""

  def __init__(self, basename: str, ps_monitor=None):
    self._basename = basename
    self._ps_monitor = ps_monitor
    self._mtables = tf.compat.v1.get_collection(_MULTI_HASH_TABLE_GRAPH_KEY)
    with tf.name_scope("multi_hash_table_restorer"):
      self._path_prefix = tf.compat.v1.placeholder(tf.string, shape=[])
      self._restores = [
          (m.handle.device, m.restore(self._path_prefix + m.shared_name).as_op())
          for m in self._mtables
      ]
    self._initializers = [m.initializer for m in self._mtables]

  def before_restore(self, session):
    session.run(self._initializers)
    ckpt, path_prefix = save_utils.latest_checkpoint_asset_dir(self._basename, "multi hash tables")
    if ckpt is None:
      return
    run_ops = [
        op for device, op in self._restores
        if self._ps_monitor is None or self._ps_monitor.is_ps_uninitialized(session, device)
    ]
    logging.info("Restoring %d multi hash tables from %s.", len(run_ops), path_prefix)
    session.run(run_ops,
                feed_dict={self._path_prefix: path_prefix},
                options=tf.compat.v1.RunOptions(timeout_in_ms=_TIMEOUT_IN_MS))
