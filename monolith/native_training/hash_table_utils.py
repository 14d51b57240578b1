"""Helpers over hash tables: iterate every entry, infer a config's embedding dim."""
import tensorflow as tf

from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2


@tf.function
def iterate_table_and_apply(table, apply_fn, limit=1000, nshards=4, name="IterateTable"):
  """Calls apply_fn(serialized EntryDump batch) over every entry of `table`, `limit` per batch,
  shard by shard. Relies on the dump offset being non-zero once a shard was scanned."""
  with tf.name_scope(name):
    for i in tf.range(nshards):
      offset = tf.constant(0, dtype=tf.int64)
      dump = tf.zeros([0], dtype=tf.string)
      while tf.logical_or(tf.equal(tf.size(dump), limit), tf.equal(offset, 0)):
        tf.autograph.experimental.set_loop_options(
            parallel_iterations=1, shape_invariants=[(dump, tf.TensorShape([None]))])
        offset, dump = table.save_as_tensor(i, nshards, limit, offset)
        apply_fn(dump)


def infer_dim_size(config: embedding_hash_table_pb2.EmbeddingHashTableConfig) -> int:
  return sum(segment.dim_size for segment in config.entry_config.segments)
