import tensorflow as tf

from monolith.native_training import hash_table_ops
from monolith.native_training import hash_table_utils
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2


class HashTableUtilsTest(tf.test.TestCase):

  def test_iterate_table_and_apply(self):
    table = hash_table_ops.test_hash_table(1)
    table = table.assign(tf.range(100, dtype=tf.int64), tf.ones([100, 1]))
    count = tf.Variable(0, dtype=tf.int32)

    def count_fn(dump):
      count.assign_add(tf.size(dump))

    graph = tf.compat.v1.get_default_graph()
    before = set(graph.get_operations())
    # In graph mode the tf.function call is an output-less op: collect it to run it.
    hash_table_utils.iterate_table_and_apply(table, count_fn, limit=2, nshards=10)
    calls = [op for op in graph.get_operations() if op not in before and "PartitionedCall" in op.type]
    self.assertLen(calls, 1)
    with self.session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      sess.run(table.as_op())
      sess.run(calls)
      self.assertEqual(sess.run(count), 100)

  def test_infer_dim_size(self):
    config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
    for d in [3, 5]:
      config.entry_config.segments.add(dim_size=d)
    self.assertEqual(hash_table_utils.infer_dim_size(config), 8)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
