"""The collisionless embedding hash table: Python API over the MonolithHashTable* ops."""
import abc
import concurrent.futures
import copy
import dataclasses
import os
from typing import Dict, List, Optional

from absl import logging
import tensorflow as tf
from tensorflow.python.framework import ops

from monolith.native_training import basic_restore_hook
from monolith.native_training import distributed_serving_ops
from monolith.native_training import entry
from monolith.native_training import graph_meta
from monolith.native_training import hash_filter_ops
from monolith.native_training import hash_table_utils
from monolith.native_training import save_utils
from monolith.native_training.hash_table_ops_pb2 import HashTableProto
from monolith.native_training.model_export import export_context
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2
from monolith.native_training.runtime.ops import gen_monolith_ops

hash_table_ops = gen_monolith_ops

_TIMEOUT_IN_MS = 60 * 60 * 1000
_HASH_TABLE_GRAPH_KEY = "monolith_hash_tables"
_BOOL_MAP = {
    None: HashTableProto.kBoolNone,
    False: HashTableProto.kFalse,
    True: HashTableProto.kTrue,
}
_BOOL_REVERSE_MAP = {v: k for k, v in _BOOL_MAP.items()}


class BaseHashTable(abc.ABC):
  """int64 id -> float embedding table whose writes return a new table object, so that chained
  updates are ordered by data dependencies."""

  @abc.abstractmethod
  def assign(self, ids: tf.Tensor, values: tf.Tensor, req_time: tf.Tensor = None) -> "BaseHashTable":
    pass

  @abc.abstractmethod
  def assign_add(self,
                 ids: tf.Tensor,
                 values: tf.Tensor,
                 req_time: tf.Tensor = None) -> "BaseHashTable":
    pass

  @abc.abstractmethod
  def lookup(self, ids: tf.Tensor, use_multi_threads=False, enable_dedup=False) -> tf.Tensor:
    pass

  @property
  @abc.abstractmethod
  def dim_size(self) -> int:
    pass

  @abc.abstractmethod
  def apply_gradients(self,
                      ids: tf.Tensor,
                      grads: tf.Tensor,
                      global_step: tf.Tensor,
                      use_multi_threads=False,
                      enable_dedup=False,
                      req_time: tf.Tensor = None) -> "BaseHashTable":
    pass

  @abc.abstractmethod
  def as_op(self, name=None) -> tf.Operation:
    pass


@dataclasses.dataclass
class HashTableMetadata:
  name_set: set = dataclasses.field(default_factory=set)
  tensor_table_to_obj_dict: dict = dataclasses.field(default_factory=dict)


def _zero_req_time():
  return tf.constant(0, dtype=tf.int64)


class HashTable(BaseHashTable):
  """A MonolithHashTable resource plus what saving and training need (name, dim, learning rates,
  expiry config)."""

  def __init__(self,
               table: tf.Tensor = None,
               shared_name: str = None,
               dim_size: int = None,
               slot_expire_time_config: bytes = None,
               learning_rate_tensor: tf.Tensor = None,
               saver_parallel: int = -1,
               extra_restore_names=None,
               table_proto: HashTableProto = None,
               import_scope: str = None):
    if table_proto is not None:
      graph = tf.compat.v1.get_default_graph()
      self._table = graph.as_graph_element(
          ops.prepend_name_scope(table_proto.table_tensor, import_scope))
      self._dim_size = table_proto.dim_size
      self._shared_name = table_proto.shared_name
      self._slot_expire_time_config = table_proto.slot_expire_time_config
      self._learning_rate_tensor = graph.as_graph_element(
          ops.prepend_name_scope(table_proto.learning_rate_tensor, import_scope))
      self._saver_parallel = table_proto.saver_parallel
      self._extra_restore_names = tuple(table_proto.extra_restore_names)
      self.export_share_embedding = _BOOL_REVERSE_MAP[table_proto.export_share_embedding]
      return
    self._table = table
    self._shared_name = shared_name
    self._dim_size = dim_size
    self._slot_expire_time_config = slot_expire_time_config
    self._learning_rate_tensor = learning_rate_tensor
    self._saver_parallel = saver_parallel
    self._extra_restore_names = extra_restore_names or []
    self.export_share_embedding = None
    metadata = self.get_metadata()
    if shared_name in metadata.name_set:
      raise ValueError("shared_name {} has already been used.".format(shared_name))
    metadata.name_set.add(shared_name)
    tf.compat.v1.add_to_collection(_HASH_TABLE_GRAPH_KEY, self)

  @classmethod
  def get_metadata(cls) -> HashTableMetadata:
    return graph_meta.get_meta("hash_table_metadata", HashTableMetadata)

  @property
  def table(self) -> tf.Tensor:
    return self._table

  @property
  def name(self) -> str:
    return self._shared_name

  @property
  def extra_restore_names(self):
    return self._extra_restore_names

  @property
  def dim_size(self) -> int:
    return self._dim_size

  def to_proto(self, export_scope: str = None) -> Optional[HashTableProto]:
    if export_scope is not None and not self._table.name.startswith(export_scope):
      return None
    proto = HashTableProto(
        table_tensor=ops.strip_name_scope(self._table.name, export_scope),
        dim_size=self._dim_size,
        shared_name=self._shared_name,
        slot_expire_time_config=self._slot_expire_time_config,
        learning_rate_tensor=ops.strip_name_scope(self._learning_rate_tensor.name,
                                                  export_scope),
        saver_parallel=self._saver_parallel,
        export_share_embedding=_BOOL_MAP[self.export_share_embedding])
    proto.extra_restore_names.extend(self._extra_restore_names)
    return proto

  @staticmethod
  def from_proto(table_proto: HashTableProto, import_scope: str = None) -> "HashTable":
    return HashTable(table_proto=table_proto, import_scope=import_scope)

  def _copy_with_new_table(self, new_table: tf.Tensor) -> "HashTable":
    copied = copy.copy(self)
    copied._table = new_table
    return copied

  def assign(self, ids: tf.Tensor, values: tf.Tensor, req_time: tf.Tensor = None) -> "HashTable":
    if req_time is None:
      req_time = _zero_req_time()
    ids = tf.convert_to_tensor(ids, dtype=tf.int64)
    values = tf.convert_to_tensor(values, dtype=tf.float32)
    new_table = hash_table_ops.monolith_hash_table_assign(self._table, ids, values, req_time)
    return self._copy_with_new_table(new_table)

  def assign_add(self,
                 ids: tf.Tensor,
                 values: tf.Tensor,
                 req_time: tf.Tensor = None) -> "HashTable":
    # Unlike assign, no dtype conversion (upstream behaviour): TF's dtype error names the input.
    if req_time is None:
      req_time = _zero_req_time()
    new_table = hash_table_ops.monolith_hash_table_assign_add(self._table, ids, values, req_time)
    return self._copy_with_new_table(new_table)

  def lookup(self, ids: tf.Tensor, use_multi_threads=False, enable_dedup=False) -> tf.Tensor:
    del enable_dedup  # accepted for API compatibility; lookups never need it
    return hash_table_ops.monolith_hash_table_lookup(self._table,
                                                     ids,
                                                     dim_size=self._dim_size,
                                                     use_multi_threads=use_multi_threads)

  def lookup_entry(self, ids: tf.Tensor) -> tf.Tensor:
    return hash_table_ops.monolith_hash_table_lookup_entry(self._table, ids)

  def apply_gradients(self,
                      ids: tf.Tensor,
                      grads: tf.Tensor,
                      global_step: tf.Tensor,
                      use_multi_threads=False,
                      enable_dedup=False,
                      req_time: tf.Tensor = None) -> "HashTable":
    if req_time is None:
      req_time = _zero_req_time()
    update_op = hash_table_ops.monolith_hash_table_optimize(
        self._table,
        ids,
        grads,
        self._learning_rate_tensor,
        req_time,
        global_step,
        use_multi_threads=use_multi_threads,
        enable_dedup=enable_dedup)
    with tf.control_dependencies([update_op]):
      return self._copy_with_new_table(tf.identity(self._table))

  def as_op(self, name=None) -> tf.Tensor:
    return self._table

  def table_update(self, update_op) -> "HashTable":
    with tf.control_dependencies([update_op]):
      return self._copy_with_new_table(tf.identity(self._table))

  def save(self, basename: tf.Tensor, random_sleep_ms: int = 0) -> "HashTable":
    new_table = hash_table_ops.monolith_hash_table_save(
        self._table,
        basename,
        slot_expire_time_config=self._slot_expire_time_config,
        nshards=self._saver_parallel,
        random_sleep_ms=random_sleep_ms)
    return self._copy_with_new_table(new_table)

  def restore(self, basename: tf.Tensor) -> "HashTable":
    return self._copy_with_new_table(
        hash_table_ops.monolith_hash_table_restore(self._table, basename))

  def size(self) -> tf.Tensor:
    return hash_table_ops.monolith_hash_table_size(self._table)

  def save_as_tensor(self, shard_idx, num_shards, limit, offset):
    """(new_offset, serialized EntryDump strings) of one partitioned-dump call."""
    return hash_table_ops.monolith_hash_table_save_as_tensor(
        self._table,
        tf.cast(shard_idx, tf.int32),
        tf.cast(num_shards, tf.int32),
        tf.cast(limit, tf.int64),
        tf.cast(offset, tf.int64),
        name="monolith_hash_table_save_as_tensor")


ops.register_proto_function(_HASH_TABLE_GRAPH_KEY,
                            proto_type=HashTableProto,
                            to_proto=HashTable.to_proto,
                            from_proto=HashTable.from_proto)


def fused_lookup(tables: List[HashTable],
                 ids: tf.Tensor,
                 fused_slot_size: tf.Tensor,
                 num_of_shards: int,
                 req_time: tf.Tensor = None):
  """Looks up blocks of ids in several tables at once. `ids` holds, shard by shard, one block
  per table of fused_slot_size[shard * len(tables) + t] ids. Returns (embeddings,
  embedding_splits, id_offsets, embedding_offsets, indices)."""
  if req_time is None:
    req_time = _zero_req_time()
  return hash_table_ops.monolith_hash_table_fused_lookup([t.table for t in tables],
                                                         ids,
                                                         fused_slot_size,
                                                         req_time,
                                                         num_of_shards=num_of_shards)


def fused_apply_gradient(tables: List[HashTable],
                         ids: tf.Tensor,
                         indices: tf.Tensor,
                         fused_slot_size: tf.Tensor,
                         id_grads: tf.Tensor,
                         id_offsets: tf.Tensor,
                         grad_offsets: tf.Tensor,
                         learning_rate_tensors: tf.Tensor,
                         req_time: tf.Tensor,
                         global_step: tf.Tensor,
                         num_of_shards: int,
                         enable_grad_accumulation: bool = False) -> List[tf.Tensor]:
  """Applies the gradients of a fused_lookup; returns the tables' forwarded handles."""
  return hash_table_ops.monolith_hash_table_fused_optimize(
      [t.table for t in tables],
      ids,
      indices,
      fused_slot_size,
      id_grads,
      id_offsets,
      grad_offsets,
      learning_rate_tensors,
      req_time,
      global_step,
      num_of_shards=num_of_shards,
      enable_grad_accumulation=enable_grad_accumulation)


def hash_table_from_config(config: entry.HashTableConfigInstance,
                           hash_filter: tf.Tensor = None,
                           name_suffix: str = "",
                           sync_client: tf.Tensor = None,
                           saver_parallel: int = -1) -> HashTable:
  """Builds a MonolithHashTable from `config` (a cuckoo table on CPU)."""
  table_config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
  table_config.CopyFrom(config.table_config)
  table_type = table_config.WhichOneof("type")
  assert table_type, "hash table config must set a table type: {}".format(table_config)
  device = "/device:GPU:0" if table_type == "gpucuco" else "/device:CPU:0"
  if export_context.is_exporting():
    table_config.entry_config.entry_type = embedding_hash_table_pb2.EntryConfig.SERVING
  dim_size = hash_table_utils.infer_dim_size(config.table_config)
  serialized_config = table_config.SerializeToString()
  slot_expire_time_config = config.table_config.slot_expire_time_config.SerializeToString()
  name = "MonolithHashTable_" + name_suffix
  if len(config.learning_rate_fns) != len(table_config.entry_config.segments):
    raise ValueError("Size of learning_rate_fns and size of segments must be equal.")
  with tf.device(device):
    if hash_filter is None:
      hash_filter = hash_filter_ops.create_dummy_hash_filter(name_suffix=name_suffix)
    if sync_client is None or table_type == "gpucuco":
      sync_client = distributed_serving_ops.create_dummy_sync_client()
    table_op = hash_table_ops.monolith_hash_table(name=name,
                                                  filter_handle=hash_filter,
                                                  sync_client_handle=sync_client,
                                                  config=serialized_config,
                                                  shared_name=name)
  return HashTable(table_op,
                   shared_name=name,
                   dim_size=dim_size,
                   slot_expire_time_config=slot_expire_time_config,
                   learning_rate_tensor=config.call_learning_rate_fns(),
                   saver_parallel=saver_parallel,
                   extra_restore_names=config.extra_restore_names)


def test_hash_table(dim_size: int,
                    enable_hash_filter: bool = False,
                    name_suffix: str = None,
                    learning_rate: float = 1.0,
                    occurrence_threshold: int = 0,
                    use_adagrad: bool = False,
                    expire_time: int = 36500,
                    sync_client: tf.Tensor = None,
                    extra_restore_names=None,
                    use_gpu: bool = False) -> HashTable:
  """A one-segment cuckoo table (SGD or Adagrad, zeros init, fp32) for tests."""
  table_config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
  if use_gpu:
    table_config.gpucuco.SetInParent()  # AttributeError: no gpucuco in the public proto (Q1)
  else:
    table_config.cuckoo.SetInParent()
  segment = table_config.entry_config.segments.add()
  segment.dim_size = dim_size
  if use_adagrad:
    segment.opt_config.adagrad.SetInParent()
  else:
    segment.opt_config.sgd.SetInParent()
  if use_gpu:
    segment.init_config.ones.SetInParent()
  else:
    segment.init_config.zeros.SetInParent()
  segment.comp_config.fp32.SetInParent()
  table_config.slot_expire_time_config.default_expire_time = expire_time
  config = entry.HashTableConfigInstance(table_config, [learning_rate],
                                         extra_restore_names=extra_restore_names)
  threshold_config = embedding_hash_table_pb2.SlotOccurrenceThresholdConfig(
      default_occurrence_threshold=occurrence_threshold)
  hash_filters = hash_filter_ops.create_hash_filters(0, enable_hash_filter,
                                                     threshold_config.SerializeToString())
  if name_suffix is None:
    name_suffix = tf.compat.v1.get_default_graph().unique_name("test")
  return hash_table_from_config(config,
                                hash_filter=hash_filters[0],
                                name_suffix=name_suffix,
                                sync_client=sync_client)


def vocab_hash_table(vocab_size: int,
                     dim_size: int,
                     enable_hash_filter: bool = False,
                     learning_rate: float = 1.0) -> HashTable:
  del vocab_size  # the table grows as needed
  return test_hash_table(dim_size, enable_hash_filter, learning_rate=learning_rate)


def extract_slot_from_entry(entry_tensor: tf.Tensor, fid_v2: bool = True) -> tf.Tensor:
  """The fid slot of every serialized EntryDump in `entry_tensor` (int32, same shape)."""
  return hash_table_ops.monolith_extract_slot_from_entry(entry_tensor, fid_v2=fid_v2)


def _sanitize(name: str) -> str:
  return name.replace(":", "-").replace("/", "-")


def _all_table_tensor_prefix(table: HashTable) -> List[str]:
  return [_sanitize(n) for n in [table.name] + list(table.extra_restore_names)]


def _table_tensor_prefix(table: HashTable) -> str:
  return _all_table_tensor_prefix(table)[0]


class HashTableCheckpointSaverListener(tf.compat.v1.train.CheckpointSaverListener):
  """Saves every table of the graph into the checkpoint's asset dir before the checkpoint index
  is written. Tables must exist when the listener is created."""

  def __init__(self, basename: str):
    self._helper = save_utils.SaveHelper(basename)
    tables = tf.compat.v1.get_collection(_HASH_TABLE_GRAPH_KEY)
    self._table_placeholders = []
    save_ops = []
    with tf.name_scope("hash_table_saver"):
      for table in tables:
        placeholder = tf.compat.v1.placeholder(tf.string, shape=[])
        save_ops.append(table.save(placeholder, random_sleep_ms=15 * len(tables)).as_op())
        self._table_placeholders.append((table, placeholder))
      with tf.control_dependencies(save_ops):
        self._save_op = tf.no_op()

  def before_save(self, sess, global_step_value):
    logging.info("Starting saving hash tables.")
    asset_dir = self._helper.get_ckpt_asset_dir(self._helper.get_ckpt_prefix(global_step_value))
    tf.io.gfile.makedirs(asset_dir)
    feed_dict = {p: asset_dir + _table_tensor_prefix(t) for t, p in self._table_placeholders}
    sess.run(self._save_op,
             feed_dict=feed_dict,
             options=tf.compat.v1.RunOptions(timeout_in_ms=_TIMEOUT_IN_MS))
    logging.info("Finished saving hash tables.")


class HashTableCheckpointRestorerListener(basic_restore_hook.CheckpointRestorerListener):
  """Restores every table from the latest checkpoint's asset dir when a session starts."""

  def __init__(self, basename: str, ps_monitor=None):
    self._basename = basename
    self._ps_monitor = ps_monitor
    self._tables = tf.compat.v1.get_collection(_HASH_TABLE_GRAPH_KEY)
    self._device_ops: Dict[str, list] = {}
    self._placeholders = []
    with tf.name_scope("hash_table_restorer"):
      for table in self._tables:
        placeholder = tf.compat.v1.placeholder(tf.string, shape=[])
        restore_op = table.restore(placeholder).as_op()
        self._placeholders.append(placeholder)
        self._device_ops.setdefault(table.table.device, []).append(restore_op)

  def before_restore(self, session):
    ckpt = tf.train.latest_checkpoint(os.path.dirname(self._basename))
    if ckpt is None:
      assets = tf.io.gfile.glob(os.path.join(os.path.dirname(self._basename), "*.assets"))
      if not assets:
        logging.info("No checkpoint found in %s; hash tables are not restored.",
                     os.path.dirname(self._basename))
        return
      if len(assets) > 1:
        logging.info("More than one asset dir %s without a checkpoint; not restoring.", assets)
        return
      path_prefix = assets[0] + "/"
    else:
      path_prefix = save_utils.SaveHelper.get_ckpt_asset_dir(ckpt)
    self._restore_from_path_prefix(session, path_prefix)

  def _restore_from_path_prefix(self, sess, path_prefix: str):

    def find_prefix(table):
      prefixes = _all_table_tensor_prefix(table)
      for p in prefixes:
        if tf.io.gfile.glob(path_prefix + p + "*"):
          return path_prefix + p
      raise ValueError(
          "Unable to find table checkpoint in '%s' for table: %s. Maybe the model structure "
          "has been changed." % (path_prefix, repr(prefixes)))

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
      prefixes = list(pool.map(find_prefix, self._tables))
    feed_dict = dict(zip(self._placeholders, prefixes))
    run_ops = []
    for device, device_ops in self._device_ops.items():
      if self._ps_monitor is None or self._ps_monitor.is_ps_uninitialized(sess, device):
        run_ops.extend(device_ops)
    logging.info("Starting restoring hash tables from %s.", path_prefix)
    sess.run(run_ops,
             feed_dict=feed_dict,
             options=tf.compat.v1.RunOptions(timeout_in_ms=_TIMEOUT_IN_MS))
    logging.info("Finished restoring hash tables.")


class HashTableRestorerSaverListener(tf.compat.v1.train.CheckpointSaverListener):
  """Reloads what was just saved (dropping expired entries) after every save."""

  def __init__(self, ckpt_prefix: str):
    self._restorer = HashTableCheckpointRestorerListener(ckpt_prefix)

  def after_save(self, session, global_step_value):
    self._restorer.before_restore(session)
