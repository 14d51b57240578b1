"""`BaseEmbeddingTask`: base of TPU embedding tasks.

It owns the input pipeline (TFRecord files -> parsed, id-normalised sparse features), the
per-slot vocabulary sizes read from a vocab file, and the TPU embedding feature/table configs
derived from the `FeatureSlot`s that `logits_fn()` registers in the `Env`.
With `params["cpu_test"]` the same task runs on CPU: embeddings become ordinary variables
(`process_features_for_cpu_test`).
"""

import copy
import os
import shutil
import subprocess
from typing import Dict, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from monolith.core import auto_checkpoint_feed_hook
from monolith.core import base_task
from monolith.core import util
from monolith.core.feature import Env
from monolith.core.feature import FeatureColumn3D

_UID = 'uid'
_UID_BUCKET = 'uid_bucket'
# Users are bucketed by `uid % _RATIO_N` so that metrics can be computed on a sample of them.
_RATIO_N = 100
# Local folder the vocab file is downloaded into.
_VOCAB_TEMP_FOLDER = 'temp'

TRAIN = 'train'


class BaseEmbeddingTask(base_task.BaseTask):
  """A task whose sparse features are looked up in TPU embedding tables."""

  @classmethod
  def params(cls):
    p = super(BaseEmbeddingTask, cls).params()
    p.define('vocab_size_per_slot', None, 'If set, every slot uses this vocab size.')
    p.define('custom_vocab_size_mapping', None,
             'Dict slot id -> vocab size overriding the vocab file.')
    p.define('vocab_size_offset', None, 'Added to every slot vocab size.')
    p.define('qr_multi_hashing', False,
             'Split slots with vocab size above qr_hashing_threshold into quotient and '
             'remainder tables.')
    p.define('qr_hashing_threshold', 100000000, 'Vocab size above which QR hashing is used.')
    p.define('qr_collision_rate', 4, 'Number of ids sharing one remainder row.')
    p.define('vocab_file_path', None, 'Tab separated file of "<slot id>\\t<vocab size>".')
    p.define('enable_deepinsight', False, 'Send labels/predictions to DeepInsight.')
    p.define('enable_host_call_scalar_metrics', False, 'Write scalar metrics in the host call.')
    p.define('enable_host_call_norm_metrics', False, 'Write norm metrics in the host call.')
    p.define('files_interleave_cycle_length', 4, 'Number of files read concurrently.')
    p.define('deterministic', False, 'Deterministic input order.')
    p.define('gradient_multiplier', 1.0, 'Multiplier of the embedding gradients.')
    p.define('enable_caching_with_tpu_var_mode', False,
             'Cache host call tensors in TPU variables between host calls.')
    p.define('top_k_sampling_num_per_core', 6,
             'Examples per core and step kept for the host call.')
    p.define('use_random_init_embedding_for_oov', False,
             'Replace all-zero (OOV) embeddings by random values.')
    p.define('merge_vector', False, 'Merge the vector slices of a slot into one table.')

    p.train.define('file_folder', None, 'Root folder of the dated training files.')
    p.train.define('date_and_file_name_format', '*/*/part*',
                   'Glob of the files under file_folder; starts with the YYYYMMDD folder.')
    p.train.define('start_date', None, 'First date (YYYYMMDD) of training files, inclusive.')
    p.train.define('end_date', None, 'Last date (YYYYMMDD) of training files, inclusive.')
    p.train.define('vocab_file_folder_prefix', None,
                   'HDFS prefix of the vocab files; "<prefix><end_date>/part*.csv".')
    return p

  def __init__(self, params):
    super(BaseEmbeddingTask, self).__init__(params)
    self.p = params
    self._enable_deepinsight = params.enable_deepinsight
    self._enable_host_call_scalar_metrics = params.enable_host_call_scalar_metrics
    self._enable_caching_with_tpu_var_mode = params.enable_caching_with_tpu_var_mode
    self._top_k_sampling_num_per_core = params.top_k_sampling_num_per_core
    if params.vocab_size_per_slot:
      logging.info('Every slot uses the fixed vocab size %d.', params.vocab_size_per_slot)
    if params.custom_vocab_size_mapping:
      logging.info('Custom vocab sizes: %s', params.custom_vocab_size_mapping)
    vocab_size_dict = self._create_vocab_dict()
    self._env = Env(vocab_size_dict=vocab_size_dict, params=self.p)
    self._feature_to_config_dict = {}
    self._table_to_config_dict = {}

  def download_vocab_size_file_from_hdfs(self):
    """Copies `<vocab_file_folder_prefix><end_date>/part*.csv` into ./temp with `hadoop fs`."""
    if os.path.exists(_VOCAB_TEMP_FOLDER):
      shutil.rmtree(_VOCAB_TEMP_FOLDER)
    os.makedirs(_VOCAB_TEMP_FOLDER)
    hdfs_path = '{}{}/part*.csv'.format(self.p.train.vocab_file_folder_prefix,
                                        self.p.train.end_date)
    cmd = ['hadoop', 'fs', '-copyToLocal', hdfs_path, _VOCAB_TEMP_FOLDER]
    logging.info('Downloading vocab file: %s', ' '.join(cmd))
    try:
      returncode = subprocess.run(cmd).returncode
    except OSError as e:
      logging.error('Running %s failed: %s', cmd, e)
      returncode = -1
    files = sorted(os.listdir(_VOCAB_TEMP_FOLDER))
    if returncode == 0 and len(files) == 1:
      self.p.vocab_file_path = os.path.join(_VOCAB_TEMP_FOLDER, files[0])
      logging.info('Using downloaded vocab file %s', self.p.vocab_file_path)
    else:
      logging.warning(
          'Vocab download from %s returned %d with files %s; keeping vocab_file_path %s.',
          hdfs_path, returncode, files, self.p.vocab_file_path)

  def _create_vocab_dict(self) -> Dict[int, int]:
    """Slot id -> vocab size, from the vocab file adjusted by the vocab params."""
    if self.p.train.end_date and self.p.train.vocab_file_folder_prefix:
      self.download_vocab_size_file_from_hdfs()
    assert self.p.vocab_file_path is not None and tf.io.gfile.exists(self.p.vocab_file_path), (
        'vocab_file_path {} does not exist.'.format(self.p.vocab_file_path))
    vocab_size_dict = {}
    with tf.io.gfile.GFile(self.p.vocab_file_path) as f:
      for line_number, line in enumerate(f, 1):
        if not line.strip():
          continue
        fields = line.strip().split('\t')
        assert len(fields) == 2, ('{}:{}: expected "<slot id>\\t<vocab size>", got {!r}'.format(
            self.p.vocab_file_path, line_number, line.rstrip('\n')))
        if not fields[0].isdigit():
          logging.info('Skipping non-numeric slot %r in %s.', fields[0], self.p.vocab_file_path)
          continue
        slot_id = int(fields[0])
        if self.p.vocab_size_per_slot:
          distinct_count = self.p.vocab_size_per_slot
        else:
          distinct_count = int(fields[1])
          if self.p.custom_vocab_size_mapping and slot_id in self.p.custom_vocab_size_mapping:
            distinct_count = self.p.custom_vocab_size_mapping[slot_id]
        if self.p.vocab_size_offset:
          distinct_count += self.p.vocab_size_offset
        vocab_size_dict[slot_id] = distinct_count
    logging.info('Vocab size dict: %s', vocab_size_dict)
    return vocab_size_dict

  def _parse_inputs(self, return_values):
    if isinstance(return_values, tuple):
      features, labels = return_values
    else:
      features, labels = return_values, None
    return features, labels

  def create_input_fn(self, mode=TRAIN):
    """Returns `input_fn(params)` building the training dataset.

    `params` is the TPUEstimator-style dict: `batch_size`, `cpu_test`, and otherwise `context`
    (with `current_input_fn_deployment()`) and `enable_stopping_signals`.
    """
    assert mode == TRAIN, 'Only the {} mode is supported, got {}.'.format(TRAIN, mode)
    p = self.p
    file_pattern = p.train.file_pattern

    def tf_example_parser(examples):
      feature_map = self._get_feature_map()
      example = tf.io.parse_example(examples, feature_map)
      return self._post_process_example(example)

    def insert_stopping_signal(stop, batch_size,
                               name=auto_checkpoint_feed_hook._USER_PROVIDED_SIGNAL_NAME):

      def _map_fn(*args):
        features, labels = self._parse_inputs(args if len(args) > 1 else args[0])
        features = dict(features)
        if stop:
          # The final (repeated) batch must not contribute data: empty its sparse ids.
          for key, value in features.items():
            if isinstance(value, tf.SparseTensor):
              features[key] = tf.SparseTensor(
                  indices=tf.zeros([0, value.indices.shape[1]], tf.int64),
                  values=tf.zeros([0], value.values.dtype),
                  dense_shape=value.dense_shape)
        features[name] = tf.cast(
            tf.ones([batch_size]) if stop else tf.zeros([batch_size]), tf.bool)
        return features if labels is None else (features, labels)

      return _map_fn

    def input_fn(params):
      batch_size = params['batch_size']
      if params['cpu_test']:
        files = tf.io.gfile.glob(file_pattern) if file_pattern else []
        if not files:
          raise ValueError('No training files match train.file_pattern {!r}.'.format(file_pattern))
        dataset = tf.data.TFRecordDataset(files)
        dataset = dataset.batch(batch_size, drop_remainder=True)
        dataset = dataset.map(tf_example_parser)
        return dataset.repeat()

      if file_pattern:
        files = tf.data.Dataset.list_files(file_pattern, shuffle=False)
      else:
        assert p.train.file_folder and p.train.date_and_file_name_format, (
            'train.file_folder and train.date_and_file_name_format are required when '
            'train.file_pattern is not set.')
        root = os.path.join(p.train.file_folder, '')
        files = tf.data.Dataset.list_files(root + p.train.date_and_file_name_format,
                                           shuffle=False)
        assert p.train.end_date is not None, 'train.end_date is required with train.file_folder.'
        assert params.get('enable_stopping_signals') is not None, (
            'params["enable_stopping_signals"] is required with train.file_folder.')
        files = util.range_dateset(files, root, p.train.start_date, p.train.end_date)
      _, call_index, num_calls, _ = params['context'].current_input_fn_deployment()
      files = files.shard(num_calls, call_index)
      dataset = files.interleave(tf.data.TFRecordDataset,
                                 cycle_length=p.files_interleave_cycle_length,
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=p.deterministic)
      dataset = dataset.batch(batch_size, drop_remainder=True)
      dataset = dataset.map(tf_example_parser, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=p.deterministic)
      enable_stopping_signals = params.get('enable_stopping_signals')
      if p.train.repeat:
        assert not enable_stopping_signals, (
            'train.repeat and enable_stopping_signals cannot both be set.')
        dataset = dataset.repeat()
      if enable_stopping_signals:
        # After the data ends, repeat batches flagged `stop` so that every replica keeps getting
        # input until the outfeed has seen the signal.
        user_provided_dataset = dataset.map(insert_stopping_signal(False, batch_size),
                                            deterministic=False)
        final_batch_dataset = dataset.repeat().map(insert_stopping_signal(True, batch_size),
                                                   deterministic=False)
        dataset = user_provided_dataset.concatenate(final_batch_dataset)
      return dataset.prefetch(tf.data.AUTOTUNE)

    return input_fn

  def logits_fn(self):
    raise NotImplementedError('Abstract method.')

  def init_slot_to_env(self):
    """Runs `logits_fn()` once so that it registers its slots, then finalizes the env."""
    logging.info('Registering feature slots by running logits_fn.')
    self.logits_fn()
    self._env.finalize()

  def create_model_fn(self):
    raise NotImplementedError('Abstract method.')

  def _get_feature_map(self):
    """Feature name -> tf.io feature spec (`<fc_name>_0` for embedding columns)."""
    raise NotImplementedError('Abstract method.')

  def _post_process_example(self, example):
    """Normalises the parsed ids of every column to the id space of its table(s)."""
    p = self.p
    for slot_id, feature_slot in self._env.slot_id_to_feature_slot.items():
      for feature_column in feature_slot.feature_columns:
        fc_name = feature_column.fc_name
        key = '{}_0'.format(fc_name)
        if key not in example:
          raise KeyError('Feature {} of slot {} is not in the parsed example (keys: {}).'.format(
              key, slot_id, sorted(example.keys())))
        embedding_tensor = example[key]
        if isinstance(feature_column, FeatureColumn3D):
          ragged = embedding_tensor
          embedding_tensor = ragged.to_sparse()
        embedding_tensor = tf.SparseTensor(embedding_tensor.indices,
                                           tf.maximum(embedding_tensor.values, 0),
                                           embedding_tensor.dense_shape)
        if p.vocab_size_per_slot:
          vocab_size = p.vocab_size_per_slot
        else:
          vocab_size = self._env._vocab_size_dict.get(slot_id, 10)
          if p.custom_vocab_size_mapping and slot_id in p.custom_vocab_size_mapping:
            vocab_size = p.custom_vocab_size_mapping[slot_id]
        values = tf.math.floormod(embedding_tensor.values,
                                  tf.constant(vocab_size, embedding_tensor.values.dtype))

        slices = list(feature_column.feature_slice_to_tf_placeholder)
        if p.qr_multi_hashing and vocab_size > p.qr_hashing_threshold:
          r_vocab_size = vocab_size // p.qr_collision_rate + 1
          r = tf.constant(r_vocab_size, values.dtype)
          remainder = tf.SparseTensor(embedding_tensor.indices, tf.math.floormod(values, r),
                                      embedding_tensor.dense_shape)
          quotient = tf.SparseTensor(embedding_tensor.indices, tf.math.floordiv(values, r),
                                     embedding_tensor.dense_shape)
          del example[key]
          for feature_slice in slices:
            name = '{}_{}'.format(fc_name, feature_slice.slice_index)
            example[name + '_0'] = tf.sparse.reorder(remainder)
            example[name + '_1'] = tf.sparse.reorder(quotient)
          continue

        new_sparse = tf.SparseTensor(embedding_tensor.indices, values,
                                     embedding_tensor.dense_shape)
        if isinstance(feature_column, FeatureColumn3D):
          example['{}_0_row_lengths'.format(fc_name)] = tf.cast(
              tf.minimum(ragged.row_lengths(), feature_column.max_seq_length), tf.int32)
          new_sparse = tf.sparse.slice(new_sparse, [0, 0], [
              tf.shape(ragged.row_lengths(), out_type=tf.int64)[0],
              feature_column.max_seq_length
          ])
          # The sliced shape is [batch, min(longest row, max_seq_length)]; TPU sequence features
          # need the full max_seq_length width.
          new_sparse = tf.SparseTensor(new_sparse.indices, new_sparse.values, [
              new_sparse.dense_shape[0],
              tf.constant(feature_column.max_seq_length, tf.int64)
          ])
        example[key] = tf.sparse.reorder(new_sparse)
        for feature_slice in slices:
          if feature_slice.slice_index != 0:
            example['{}_{}'.format(fc_name, feature_slice.slice_index)] = example[key]
    if _UID in example:
      example[_UID_BUCKET] = tf.cast(tf.math.floormod(example[_UID], _RATIO_N), tf.int32)
    return example

  def _make_table_config(self, name, vocab_size, feature_slice):
    optimizer = feature_slice.optimizer
    if feature_slice.learning_rate_fn is not None and optimizer is not None:
      # The v2 embedding optimizers take the learning rate (float or callable) themselves.
      optimizer = copy.copy(optimizer)
      optimizer.learning_rate = feature_slice.learning_rate_fn
    return tf.tpu.experimental.embedding.TableConfig(vocabulary_size=vocab_size,
                                                     dim=feature_slice.dim,
                                                     initializer=feature_slice.initializer,
                                                     optimizer=optimizer,
                                                     combiner='sum',
                                                     name=name)

  def create_feature_and_table_config_dict(self) -> Tuple[dict, dict]:
    """Feature name -> FeatureConfig and table name -> TableConfig for every column slice.

    Tables are per slot and slice (`table_<slot>_<slice>`), shared by the slot's columns.
    With QR hashing, slots above the threshold also get `<table>_0` (remainder, vocab
    `size // qr_collision_rate + 1`) and `<table>_1` (quotient, `qr_collision_rate + 1`) tables
    read by the features `<fc>_<slice>_0` / `<fc>_<slice>_1`.
    """
    assert self._env.is_finalized(), 'init_slot_to_env() must run first.'
    p = self.p
    for slot_id, feature_slot in self._env.slot_id_to_feature_slot.items():
      vocab_size = self._env.vocab_size_dict.get(slot_id, 1)
      for feature_column in feature_slot.feature_columns:
        max_sequence_length = (feature_column.max_seq_length if isinstance(
            feature_column, FeatureColumn3D) else 0)
        for feature_slice in feature_column.feature_slice_to_tf_placeholder:
          table_name = 'table_{}_{}'.format(slot_id, feature_slice.slice_index)
          feature_name = '{}_{}'.format(feature_column.fc_name, feature_slice.slice_index)
          if p.qr_multi_hashing and vocab_size > p.qr_hashing_threshold:
            part_sizes = (vocab_size // p.qr_collision_rate + 1, p.qr_collision_rate + 1)
            for suffix, part_size in zip(('_0', '_1'), part_sizes):
              if table_name + suffix not in self._table_to_config_dict:
                self._table_to_config_dict[table_name + suffix] = self._make_table_config(
                    table_name + suffix, part_size, feature_slice)
              self._feature_to_config_dict[feature_name + suffix] = (
                  tf.tpu.experimental.embedding.FeatureConfig(
                      table=self._table_to_config_dict[table_name + suffix],
                      max_sequence_length=max_sequence_length,
                      name=feature_name + suffix))
          if table_name not in self._table_to_config_dict:
            self._table_to_config_dict[table_name] = self._make_table_config(
                table_name, vocab_size, feature_slice)
          self._feature_to_config_dict[feature_name] = (
              tf.tpu.experimental.embedding.FeatureConfig(
                  table=self._table_to_config_dict[table_name],
                  max_sequence_length=max_sequence_length,
                  name=feature_name))
    return self._feature_to_config_dict, self._table_to_config_dict

  def cross_shard_optimizer(self, optimizer, params):
    if params['cpu_test']:
      return optimizer
    return tf.compat.v1.tpu.CrossShardOptimizer(optimizer)

  def process_features_for_cpu_test(self, features):
    """Replaces every sparse id feature by a sum-combined lookup in a random CPU table.

    2-D features give `[batch, dim]`, sequence features `[batch, max_sequence_length, dim]`.
    """
    processed_features = {}
    for feature_name, feature in features.items():
      if not isinstance(feature, tf.SparseTensor):
        processed_features[feature_name] = feature
        continue
      if feature_name not in self._feature_to_config_dict:
        raise KeyError('No feature config for sparse feature {}; call '
                       'create_feature_and_table_config_dict() first.'.format(feature_name))
      feature_config = self._feature_to_config_dict[feature_name]
      dim = feature_config.table.dim
      max_sequence_length = feature_config.max_sequence_length
      vocab_size = feature_config.table.vocabulary_size
      width = dim if max_sequence_length == 0 else max_sequence_length * dim
      init_value = np.random.rand(vocab_size, width).astype(np.float32)
      embedding_table = tf.compat.v1.get_variable(name=feature_name, initializer=init_value)
      ids = tf.SparseTensor(feature.indices,
                            tf.math.floormod(feature.values,
                                             tf.constant(vocab_size, feature.values.dtype)),
                            feature.dense_shape)
      embedding = tf.nn.safe_embedding_lookup_sparse(embedding_table, ids, combiner='sum')
      if max_sequence_length != 0:
        embedding = tf.reshape(embedding, [-1, max_sequence_length, dim])
      processed_features[feature_name] = embedding
    self._feature_to_config_dict.clear()
    self._table_to_config_dict.clear()
    return processed_features
