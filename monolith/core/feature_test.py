import numpy as np
import tensorflow as tf

from monolith.core import feature
from monolith.core import hyperparams


def _env_params(merge_vector=False, qr_multi_hashing=False, random_oov=False):
  p = hyperparams.Params()
  p.define('qr_multi_hashing', qr_multi_hashing, '')
  p.define('qr_hashing_threshold', 100, '')
  p.define('qr_collision_rate', 4, '')
  p.define('use_random_init_embedding_for_oov', random_oov, '')
  p.define('merge_vector', merge_vector, '')
  return p


def _finalized_column(vocab_size, dim, params):
  """A finalized env with slot 1 (`vocab_size` ids, one `dim`-wide slice) read by column 'fc'."""
  env = feature.Env({1: vocab_size}, params)
  slot = feature.FeatureSlot(env, 1)
  vec = slot.add_feature_slice(dim=dim)
  column = feature.FeatureColumnV1(slot, 'fc')
  env.finalize()
  return env, vec, column


class FeatureTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self._graph = tf.Graph()
    self._graph_context = self._graph.as_default()
    self._graph_context.__enter__()

  def tearDown(self):
    self._graph_context.__exit__(None, None, None)
    super().tearDown()

  def test_slots_slices_and_placeholders(self):
    env = feature.Env({1: 10}, _env_params())
    slot = feature.FeatureSlot(env, 1, has_bias=True)
    vec = slot.add_feature_slice(dim=4)
    self.assertEqual(slot.slot_id(), 1)
    self.assertTrue(slot.has_bias())
    self.assertIs(slot.get_env(), env)
    self.assertEqual([s.slice_index for s in slot.feature_slices], [0, 1])
    self.assertEqual(repr(vec), '[FeatureSlice][slot_1][1]')
    self.assertEqual(hash(vec), hash((1, 1)))
    # Default optimizer/initializer of the slot are used.
    self.assertIs(vec.optimizer, slot.default_vec_optimizer)
    self.assertEqual(vec.optimizer.learning_rate, 0.01)
    self.assertEqual(slot.bias_optimizer.learning_rate, 0.01)

    column = feature.FeatureColumnV1(slot, 'fc_a')
    self.assertIs(feature.FeatureColumn, feature.FeatureColumnV1)
    self.assertEqual(column.get_bias().shape.as_list(), [None, 1])
    emb = column.embedding_lookup(vec)
    self.assertEqual(emb.shape.as_list(), [None, 4])
    self.assertIs(column.embedding_lookup(vec), emb)  # Cached per slice.
    self.assertEqual(len(column.feature_slice_to_tf_placeholder), 2)
    self.assertEqual(env.slot_id_to_feature_slot, {1: slot})

  def test_duplicate_slot_and_double_finalize(self):
    env = feature.Env({}, _env_params())
    feature.FeatureSlot(env, 7)
    with self.assertRaisesRegex(AssertionError,
                                'Feature slot with id: 7 can not be created more than once.'):
      feature.FeatureSlot(env, 7)
    env.finalize()
    # After finalize, registration is ignored.
    feature.FeatureSlot(env, 7)
    self.assertTrue(env.is_finalized())  # Upstream quirk: always truthy.
    with self.assertRaisesRegex(AssertionError, "Env can't be finalized more than once"):
      env.finalize()

  def test_column_without_bias(self):
    env = feature.Env({}, _env_params())
    column = feature.FeatureColumnV1(feature.FeatureSlot(env, 1), 'fc')
    with self.assertRaisesRegex(AssertionError, 'fc has no bias'):
      column.get_bias()

  def test_lookup_with_features(self):
    env, vec, column = _finalized_column(10, 2, _env_params())
    value = tf.constant([[1.0, 2.0]])
    env.set_tpu_features({'fc_0': value})
    self.assertIs(column.embedding_lookup(vec), value)

  def test_qr_lookup_sums_parts(self):
    env, vec, column = _finalized_column(1000, 2, _env_params(qr_multi_hashing=True))
    env.set_tpu_features({'fc_0_0': tf.constant([[1.0, 2.0]]), 'fc_0_1': tf.constant([[3.0, 4.0]])})
    with self.session() as sess:
      self.assertAllClose(sess.run(column.embedding_lookup(vec)), [[4.0, 6.0]])

  def test_random_init_for_oov(self):
    env, vec, column = _finalized_column(10, 3, _env_params(random_oov=True))
    env.set_tpu_features({'fc_0': tf.constant([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])})
    with self.session() as sess:
      out = sess.run(column.embedding_lookup(vec, 5.0, 6.0))
    self.assertTrue(np.all((out[0] >= 5.0) & (out[0] < 6.0)), out)
    self.assertAllEqual(out[1], [1.0, 1.0, 1.0])

  def test_sequence_column(self):
    env = feature.Env({2: 10}, _env_params())
    slot = feature.FeatureSlot(env, 2)
    vec = slot.add_feature_slice(dim=3)
    column = feature.FeatureColumn3D(slot, 5, 'seq')
    self.assertEqual(column.embedding_lookup(vec, 99).shape.as_list(), [None, 5, 3])
    size = column.size_tensor_lookup()
    self.assertEqual(size.shape.as_list(), [None, 5])
    self.assertEqual(size.op.name, 'seq_size')
    env.finalize()
    env.set_tpu_features({'seq_0_row_lengths': tf.constant([0, 2, 7], tf.int32)})
    with self.session() as sess:
      self.assertAllEqual(
          sess.run(column.size_tensor_lookup()),
          [[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])

  def test_sequence_column_with_bias_slot(self):
    # Upstream raised TypeError here (the bias lookup omits max_seq_length); fixed.
    env = feature.Env({}, _env_params())
    slot = feature.FeatureSlot(env, 3, has_bias=True)
    column = feature.FeatureColumn3D(slot, 4, 'seq')
    self.assertEqual(column.get_bias().shape.as_list(), [None, 4, 1])
    bias_slice = slot.feature_slices[0]
    self.assertIs(column.get_bias(), column.feature_slice_to_tf_placeholder[bias_slice])

  def test_merge_and_split_vectors(self):
    env = feature.Env({1: 10}, _env_params(merge_vector=True))
    slot = feature.FeatureSlot(env, 1, has_bias=True)
    s1 = slot.add_feature_slice(dim=2)
    s2 = slot.add_feature_slice(dim=3)
    column = feature.FeatureColumnV1(slot, 'fc')
    column.embedding_lookup(s1)
    column.embedding_lookup(s2)
    env.finalize()
    merged = column.feature_slice_to_tf_placeholder
    self.assertEqual([s.dim for s in merged], [1, 5])
    self.assertEqual([s.slice_index for s in slot.merged_feature_slices], [0, 1])
    self.assertEqual(list(merged.values())[1].shape.as_list(), [None, 5])

    features = {'fc_0': tf.constant([[9.0]]), 'fc_1': tf.constant([[1.0, 2.0, 3.0, 4.0, 5.0]])}
    env.set_tpu_features(features)
    with self.session() as sess:
      self.assertAllEqual(sess.run(column.embedding_lookup(s1)), [[1.0, 2.0]])
      self.assertAllEqual(sess.run(column.embedding_lookup(s2)), [[3.0, 4.0, 5.0]])
    # The bias slice is not merged: its features entry is used as is.
    self.assertIs(column.embedding_lookup(slot.feature_slices[0]), features['fc_0'])

  def test_merge_rejects_wide_bias(self):
    env = feature.Env({}, _env_params(merge_vector=True))
    slot = feature.FeatureSlot(env, 1, has_bias=True)
    slot.feature_slices[0]._dim = 2
    with self.assertRaisesRegex(AssertionError,
                                'Bias in 1 must have dim equal to 1, but actual dim is 2.'):
      env.finalize()


if __name__ == '__main__':
  tf.test.main()
