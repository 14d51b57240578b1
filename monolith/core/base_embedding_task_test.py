import os

import numpy as np
import tensorflow.compat.v1 as tf

from monolith.core import auto_checkpoint_feed_hook
from monolith.core import base_embedding_task
from monolith.core.feature import FeatureColumn3D
from monolith.core.feature import FeatureColumnV1
from monolith.core.feature import FeatureSlot
from monolith.core.testdata import test_examples

tf.disable_eager_execution()

_BATCH_SIZE = 4
_NUM_EXAMPLES = 8
_MAX_SEQ_LENGTH = 2
_SIGNAL = auto_checkpoint_feed_hook._USER_PROVIDED_SIGNAL_NAME


def _vocab_file():
  return os.path.join(os.environ['TEST_SRCDIR'], os.environ['TEST_WORKSPACE'],
                      'monolith/core/testdata/vocab.tsv')


class _Task(base_embedding_task.BaseEmbeddingTask):
  """Slot 1: 2-D column with bias; slot 2: sequence column; slot 3: huge vocab (QR hashing)."""

  def logits_fn(self):
    env = self._env
    slot_a = FeatureSlot(env, 1, has_bias=True)
    column_a = FeatureColumnV1(slot_a, 'f_a')
    column_a.embedding_lookup(slot_a.add_feature_slice(dim=4))
    slot_seq = FeatureSlot(env, 2)
    column_seq = FeatureColumn3D(slot_seq, _MAX_SEQ_LENGTH, 'f_seq')
    column_seq.embedding_lookup(slot_seq.add_feature_slice(dim=3), _MAX_SEQ_LENGTH)
    slot_big = FeatureSlot(env, 3)
    column_big = FeatureColumnV1(slot_big, 'f_big')
    column_big.embedding_lookup(slot_big.add_feature_slice(dim=2))

  def _get_feature_map(self):
    return {
        'uid': tf.io.FixedLenFeature([], tf.int64),
        'label': tf.io.FixedLenFeature([1], tf.float32),
        'f_a_0': tf.io.VarLenFeature(tf.int64),
        'f_seq_0': tf.io.RaggedFeature(tf.int64),
        'f_big_0': tf.io.VarLenFeature(tf.int64),
    }


class _InputContext:
  """Stand-in of the TPU context: this host is input call 0 of 1."""

  def current_input_fn_deployment(self):
    return '/cpu:0', 0, 1, 0


def _tpu_input_params(enable_stopping_signals):
  """The params the TPU estimator hands the input fn on this host."""
  return {
      'batch_size': _BATCH_SIZE,
      'cpu_test': False,
      'context': _InputContext(),
      'enable_stopping_signals': enable_stopping_signals,
  }


def _task_params(**kwargs):
  p = _Task.params()
  p.vocab_file_path = _vocab_file()
  for name, value in kwargs.items():
    p.set(**{name: value})
  return p


class VocabDictTest(tf.test.TestCase):

  def test_vocab_file(self):
    task = _task_params().instantiate()
    # Header and comment lines have non-numeric slots and are skipped.
    self.assertEqual(task._env.vocab_size_dict, {1: 1000, 2: 50, 3: 300000000, 4: 20})

  def test_vocab_size_per_slot_and_offset(self):
    task = _task_params(vocab_size_per_slot=7, vocab_size_offset=2).instantiate()
    self.assertEqual(task._env.vocab_size_dict, {1: 9, 2: 9, 3: 9, 4: 9})

  def test_custom_mapping_and_offset(self):
    task = _task_params(custom_vocab_size_mapping={2: 64, 9: 5},
                        vocab_size_offset=1).instantiate()
    self.assertEqual(task._env.vocab_size_dict, {1: 1001, 2: 65, 3: 300000001, 4: 21})

  def test_missing_and_malformed_vocab_file(self):
    p = _task_params()
    p.vocab_file_path = '/nonexistent/vocab.tsv'
    with self.assertRaisesRegex(AssertionError, '/nonexistent/vocab.tsv does not exist'):
      p.instantiate()
    bad = os.path.join(self.create_tempdir().full_path, 'bad.tsv')
    with open(bad, 'w') as f:
      f.write('1\t10\n2 20\n')
    p.vocab_file_path = bad
    with self.assertRaisesRegex(AssertionError, r'bad.tsv:2: expected'):
      p.instantiate()

  def test_failed_hdfs_download_keeps_vocab_file(self):
    cwd = os.getcwd()
    os.chdir(self.create_tempdir().full_path)
    try:
      p = _task_params()
      p.train.end_date = '20200501'
      p.train.vocab_file_folder_prefix = '/nonexistent/hdfs/vocab/'
      task = p.instantiate()
      # `hadoop` is not installed here: the download fails and the local file is used.
      self.assertEqual(task.p.vocab_file_path, _vocab_file())
      self.assertEqual(os.listdir('temp'), [])
    finally:
      os.chdir(cwd)


class FeatureAndTableConfigTest(tf.test.TestCase):

  def test_qr_multi_hashing_configs(self):
    with tf.Graph().as_default():
      task = _task_params(qr_multi_hashing=True).instantiate()
      task.init_slot_to_env()
      features, tables = task.create_feature_and_table_config_dict()
    self.assertCountEqual(
        features,
        ['f_a_0', 'f_a_1', 'f_seq_0', 'f_big_0', 'f_big_0_0', 'f_big_0_1'])
    self.assertCountEqual(
        tables, ['table_1_0', 'table_1_1', 'table_2_0', 'table_3_0', 'table_3_0_0', 'table_3_0_1'])
    # Remainder table: 300000000 // 4 + 1 rows; quotient table: collision rate + 1 rows.
    self.assertEqual(tables['table_3_0_0'].vocabulary_size, 75000001)
    self.assertEqual(tables['table_3_0_1'].vocabulary_size, 5)
    self.assertEqual(tables['table_3_0'].vocabulary_size, 300000000)
    self.assertIs(features['f_big_0_0'].table, tables['table_3_0_0'])
    self.assertIs(features['f_big_0_1'].table, tables['table_3_0_1'])
    self.assertEqual(tables['table_1_0'].dim, 1)  # bias
    self.assertEqual(tables['table_1_1'].dim, 4)
    self.assertEqual(features['f_seq_0'].max_sequence_length, _MAX_SEQ_LENGTH)
    self.assertEqual(features['f_a_1'].max_sequence_length, 0)

  def test_below_threshold_has_no_qr_tables(self):
    with tf.Graph().as_default():
      task = _task_params(qr_multi_hashing=True,
                          qr_hashing_threshold=300000000).instantiate()
      task.init_slot_to_env()
      features, tables = task.create_feature_and_table_config_dict()
    self.assertCountEqual(features, ['f_a_0', 'f_a_1', 'f_seq_0', 'f_big_0'])
    self.assertNotIn('table_3_0_0', tables)

  def test_qr_post_processing(self):
    with tf.Graph().as_default():
      task = _task_params(qr_multi_hashing=True).instantiate()
      task.init_slot_to_env()
      example = task._post_process_example({
          'f_a_0': tf.SparseTensor([[0, 0]], tf.constant([3], tf.int64), [1, 1]),
          'f_seq_0': tf.ragged.constant([[1]], tf.int64),
          'f_big_0': tf.SparseTensor([[0, 0], [0, 1]], tf.constant([80000005, -3], tf.int64),
                                     [1, 2]),
      })
      self.assertNotIn('f_big_0', example)
      with tf.Session() as sess:
        remainder, quotient = sess.run([example['f_big_0_0'], example['f_big_0_1']])
    # R = 75000001; the negative id is clamped to 0.
    self.assertAllEqual(remainder.values, [80000005 % 75000001, 0])
    self.assertAllEqual(quotient.values, [1, 0])


class InputFnTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self._data_file = os.path.join(self.create_tempdir().full_path, 'examples.tfrecord')
    test_examples.write_examples(self._data_file, _NUM_EXAMPLES)

  def _cpu_task(self, **kwargs):
    # Slot 3's file vocab (3e8 rows) is too large for a CPU table; map it down.
    p = _task_params(custom_vocab_size_mapping={3: 100}, **kwargs)
    p.train.file_pattern = self._data_file
    task = p.instantiate()
    task.init_slot_to_env()
    return task

  def test_cpu_test_input_and_features(self):
    with tf.Graph().as_default():
      task = self._cpu_task()
      dataset = task.create_input_fn()({'batch_size': _BATCH_SIZE, 'cpu_test': True})
      features = tf.data.make_one_shot_iterator(dataset).get_next()
      task.create_feature_and_table_config_dict()
      processed = task.process_features_for_cpu_test(features)
      # The config dicts are consumed.
      self.assertEqual(task._feature_to_config_dict, {})
      self.assertEqual(task._table_to_config_dict, {})
      with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        batches = [sess.run((features, processed)) for _ in range(3)]

    raw, out = batches[0]
    self.assertAllEqual(raw['uid'], [1000, 1001, 1002, 1003])
    self.assertAllEqual(raw['uid_bucket'], [0, 1, 2, 3])
    self.assertEqual(raw['uid_bucket'].dtype, np.int32)
    # Ids are clamped at 0 and reduced modulo the slot vocab (1000).
    self.assertAllEqual(raw['f_a_0'].values[:3], [0, 0, 0])
    self.assertAllEqual(raw['f_a_0'].values[3:6], [1, 1, 0])
    self.assertAllEqual(raw['f_a_1'].values, raw['f_a_0'].values)
    # Example i has i % 4 sequence ids, truncated to max_seq_length.
    self.assertAllEqual(raw['f_seq_0_row_lengths'], [0, 1, 2, 2])
    self.assertAllEqual(raw['f_seq_0'].dense_shape, [_BATCH_SIZE, _MAX_SEQ_LENGTH])
    self.assertAllEqual(raw['f_seq_0'].values, [10, 20, 21, 30, 31])
    self.assertAllEqual(raw['f_big_0'].values, [(i * 7919) % 100 for i in range(4)])

    self.assertEqual(out['f_a_0'].shape, (_BATCH_SIZE, 1))
    self.assertEqual(out['f_a_1'].shape, (_BATCH_SIZE, 4))
    self.assertEqual(out['f_big_0'].shape, (_BATCH_SIZE, 2))
    self.assertEqual(out['f_seq_0'].shape, (_BATCH_SIZE, _MAX_SEQ_LENGTH, 3))
    # Example 0 has no sequence ids: its embedding is all zeros.
    self.assertAllEqual(out['f_seq_0'][0], np.zeros([_MAX_SEQ_LENGTH, 3]))
    self.assertGreater(np.abs(out['f_seq_0'][1]).sum(), 0)
    self.assertAllEqual(out['label'], raw['label'])
    # The cpu_test dataset repeats: the third batch is the first again.
    self.assertAllEqual(batches[2][0]['uid'], raw['uid'])

  def test_stopping_signals(self):
    with tf.Graph().as_default():
      task = self._cpu_task(deterministic=True)
      dataset = task.create_input_fn()(_tpu_input_params(enable_stopping_signals=True))
      features = tf.data.make_one_shot_iterator(dataset).get_next()
      with tf.Session() as sess:
        batches = [sess.run(features) for _ in range(4)]
    self.assertAllEqual(batches[0]['uid'], [1000, 1001, 1002, 1003])
    self.assertAllEqual(batches[1]['uid'], [1004, 1005, 1006, 1007])
    for batch in batches[:2]:
      self.assertAllEqual(batch[_SIGNAL], [False] * _BATCH_SIZE)
      self.assertNotEmpty(batch['f_a_0'].values)
    # After the data ends, batches repeat with the signal set and without sparse ids.
    for batch in batches[2:]:
      self.assertAllEqual(batch[_SIGNAL], [True] * _BATCH_SIZE)
      self.assertEmpty(batch['f_a_0'].values)
      self.assertEmpty(batch['f_seq_0'].values)
      self.assertAllEqual(batch['f_a_0'].dense_shape[0], _BATCH_SIZE)

  def test_repeat_and_stopping_signals_conflict(self):
    with tf.Graph().as_default():
      task = self._cpu_task()
      task.p.train.repeat = True
      input_fn = task.create_input_fn()
      with self.assertRaisesRegex(AssertionError, 'cannot both be set'):
        input_fn(_tpu_input_params(enable_stopping_signals=True))

  def test_dated_file_folder(self):
    root = self.create_tempdir().full_path
    for day, first in (('20200501', 0), ('20200502', 4), ('20200503', 8)):
      os.makedirs(os.path.join(root, day, '00'))
      test_examples.write_examples(os.path.join(root, day, '00', 'part-0'), 4, first=first)
    with tf.Graph().as_default():
      p = _task_params(custom_vocab_size_mapping={3: 100}, deterministic=True)
      p.train.file_folder = root
      p.train.start_date = '20200502'
      p.train.end_date = '20200503'
      task = p.instantiate()
      task.init_slot_to_env()
      dataset = task.create_input_fn()(_tpu_input_params(enable_stopping_signals=False))
      features = tf.data.make_one_shot_iterator(dataset).get_next()
      uids = []
      with tf.Session() as sess:
        while True:
          try:
            uids.extend(sess.run(features['uid']))
          except tf.errors.OutOfRangeError:
            break
    self.assertCountEqual(uids, list(range(1004, 1012)))

  def test_only_train_mode(self):
    with tf.Graph().as_default():
      task = self._cpu_task()
      with self.assertRaisesRegex(AssertionError, 'Only the train mode'):
        task.create_input_fn('eval')

  def test_cross_shard_optimizer(self):
    with tf.Graph().as_default():
      task = self._cpu_task()
      optimizer = tf.train.GradientDescentOptimizer(0.1)
      self.assertIs(task.cross_shard_optimizer(optimizer, {'cpu_test': True}), optimizer)
      self.assertIsInstance(task.cross_shard_optimizer(optimizer, {'cpu_test': False}),
                            tf.tpu.CrossShardOptimizer)


if __name__ == '__main__':
  tf.test.main()
