import tensorflow as tf

from monolith.native_training import entry
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2


class EntryTest(tf.test.TestCase):

  def test_combine_as_segment(self):
    segment = entry.CombineAsSegment(
        4, entry.RandomUniformInitializer(minval=-1.0),
        entry.FtrlOptimizer(learning_rate=0.5, l1_regularization=0.25),
        entry.FixedR8Compressor(fixed_range=2.0))
    self.assertEqual(segment.dim_size, 4)
    self.assertEqual(segment.init_config.random_uniform.minval, -1.0)
    self.assertAlmostEqual(segment.init_config.random_uniform.maxval, 0.05)  # proto default
    self.assertEqual(segment.opt_config.ftrl.learning_rate, 0.5)
    self.assertEqual(segment.opt_config.ftrl.l1_regularization_strength, 0.25)
    self.assertFalse(segment.opt_config.ftrl.HasField("beta"))
    self.assertEqual(segment.comp_config.fixed_r8.r, 2.0)
    # Ready protos are accepted too.
    again = entry.CombineAsSegment(4, segment.init_config, segment.opt_config,
                                   segment.comp_config)
    self.assertEqual(again, segment)

  def test_cuckoo_config(self):
    config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
    entry.CuckooHashTableConfig(initial_capacity=100,
                                feature_evict_every_n_hours=5).mutate_table(config)
    self.assertEqual(config.WhichOneof("type"), "cuckoo")
    self.assertEqual(config.initial_capacity, 100)
    self.assertTrue(config.enable_feature_eviction)
    self.assertEqual(config.feature_evict_every_n_hours, 5)

  def test_learning_rate_fns(self):
    config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
    instance = entry.HashTableConfigInstance(config, [0.5, lambda: tf.constant(2.0)])
    with self.session() as sess:
      self.assertAllClose(sess.run(instance.call_learning_rate_fns()), [0.5, 2.0])
    with self.assertRaisesRegex(Exception, "Learning_rate_fns must be not empty."):
      entry.HashTableConfigInstance(config, []).call_learning_rate_fns()


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
