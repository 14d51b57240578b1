"""Sail-like feature API for TPU embedding tasks: `FeatureSlot`, `FeatureSlice`, `FeatureColumnV1`,
`FeatureColumn3D` and the `Env` that ties slots to the embeddings dequeued from the TPU.

Layer code calls `column.embedding_lookup(slice)` twice: first without features (the config pass
returns placeholders so that the slots/slices/dims can be discovered), then after
`env.set_tpu_features(...)` to get the real embedding tensors.
"""

from typing import Dict

import tensorflow as tf

# TF 2.21 no longer has the v1 `tf.compat.v1.tpu.experimental.*Parameters`; the v2 embedding
# optimizers are their replacement and carry the same learning rates.
_DEFAULT_BIAS_OPTIMIZER = tf.tpu.experimental.embedding.FTRL(learning_rate=0.01)
_DEFAULT_BIAS_INITIALIZER = tf.compat.v1.zeros_initializer()
_DEFAULT_VEC_OPTIMIZER = tf.tpu.experimental.embedding.Adagrad(learning_rate=0.01)
_DEFAULT_VEC_INITIALIZER = tf.compat.v1.random_uniform_initializer(minval=-0.001, maxval=0.001)

# Rows of an OOV embedding have an L2 norm below this.
_OOV_NORM_EPSILON = 1e-10


class FeatureSlice:
  """A contiguous part (`dim` wide) of a slot's embedding, with its own optimizer."""

  def __init__(self, feature_slot, dim, slice_index, optimizer=None, initializer=None,
               learning_rate_fn=None):
    self._feature_slot = feature_slot
    self._dim = dim
    self._slice_index = slice_index
    self._optimizer = optimizer
    self._initializer = initializer
    self._learning_rate_fn = learning_rate_fn

  @property
  def dim(self):
    return self._dim

  @property
  def slice_index(self):
    return self._slice_index

  @property
  def optimizer(self):
    return self._optimizer

  @property
  def initializer(self):
    return self._initializer

  @property
  def learning_rate_fn(self):
    return self._learning_rate_fn

  def __repr__(self):
    return '[FeatureSlice][slot_{}][{}]'.format(self._feature_slot.slot_id(), self._slice_index)

  def __hash__(self):
    return hash((self._feature_slot.slot_id(), self._slice_index))


class FeatureSlot:
  """A slot (feature id space) with its slices and the columns that read it."""

  def __init__(self,
               env,
               slot_id,
               has_bias=False,
               bias_optimizer=_DEFAULT_BIAS_OPTIMIZER,
               bias_initializer=_DEFAULT_BIAS_INITIALIZER,
               bias_learning_rate_fn=None,
               default_vec_optimizer=_DEFAULT_VEC_OPTIMIZER,
               default_vec_initializer=_DEFAULT_VEC_INITIALIZER,
               default_vec_learning_rate_fn=None,
               occurrence_threshold=None,
               expire_time=None):
    self._env = env
    self._slot_id = slot_id
    self._has_bias = has_bias
    self._bias_optimizer = bias_optimizer
    self._bias_initializer = bias_initializer
    self._bias_learning_rate_fn = bias_learning_rate_fn
    self._default_vec_optimizer = default_vec_optimizer
    self._default_vec_initializer = default_vec_initializer
    self._default_vec_learning_rate_fn = default_vec_learning_rate_fn
    self._occurrence_threshold = occurrence_threshold
    self._expire_time = expire_time
    self._feature_slices = []
    self._merged_feature_slices = []
    self._feature_columns = []
    self._env.set_feature_slot(slot_id, self)
    if self._has_bias:
      self._bias_slice = FeatureSlice(self, dim=1, slice_index=0, optimizer=bias_optimizer,
                                      initializer=bias_initializer,
                                      learning_rate_fn=bias_learning_rate_fn)
      self._feature_slices.append(self._bias_slice)

  def slot_id(self):
    return self._slot_id

  def has_bias(self):
    return self._has_bias

  def get_env(self):
    return self._env

  def _new_slice(self, slices, dim, optimizer, initializer, learning_rate_fn):
    feature_slice = FeatureSlice(
        self,
        dim=dim,
        slice_index=len(slices),
        optimizer=optimizer if optimizer is not None else self._default_vec_optimizer,
        initializer=initializer if initializer is not None else self._default_vec_initializer,
        learning_rate_fn=(learning_rate_fn if learning_rate_fn is not None else
                          self._default_vec_learning_rate_fn))
    slices.append(feature_slice)
    return feature_slice

  def add_feature_slice(self, dim, optimizer=None, initializer=None, learning_rate_fn=None):
    return self._new_slice(self._feature_slices, dim, optimizer, initializer, learning_rate_fn)

  def add_merged_feature_slice(self, dim, optimizer=None, initializer=None,
                               learning_rate_fn=None):
    return self._new_slice(self._merged_feature_slices, dim, optimizer, initializer,
                           learning_rate_fn)

  def _add_feature_column(self, feature_column):
    self._feature_columns.append(feature_column)
    if self._has_bias:
      for column in self._feature_columns:
        column._bias = column.embedding_lookup(self._bias_slice)

  @property
  def bias_optimizer(self):
    return self._bias_optimizer

  @property
  def bias_initializer(self):
    return self._bias_initializer

  @property
  def bias_learning_rate_fn(self):
    return self._bias_learning_rate_fn

  @property
  def default_vec_optimizer(self):
    return self._default_vec_optimizer

  @property
  def default_vec_initializer(self):
    return self._default_vec_initializer

  @property
  def default_vec_learning_rate_fn(self):
    return self._default_vec_learning_rate_fn

  @property
  def feature_slices(self):
    return self._feature_slices

  @property
  def merged_feature_slices(self):
    return self._merged_feature_slices

  @property
  def feature_columns(self):
    return self._feature_columns


class _FeatureColumnBase:
  """State and accessors shared by the 2D and sequence (3D) feature columns."""

  def __init__(self, feature_slot: FeatureSlot, fc_name: str):
    self._feature_slot = feature_slot
    self._fc_name = fc_name
    self._feature_slice_to_tf_placeholder = {}
    self._merged_feature_slice_to_tf_placeholder = {}
    self._bias = None
    # Last: a slot with bias looks the bias up through this column right away.
    feature_slot._add_feature_column(self)

  def get_bias(self):
    assert self._bias is not None, 'Feature column %s has no bias.' % self._fc_name
    return self._bias

  @property
  def feature_slot(self):
    return self._feature_slot

  @property
  def fc_name(self):
    return self._fc_name


class FeatureColumnV1(_FeatureColumnBase):
  """A named feature reading one slot; its embeddings are `embedding_lookup(slice)`."""

  def embedding_lookup(self, feature_slice, init_minval_for_oov=None, init_maxval_for_oov=None):
    return self._feature_slot.get_env()._embedding_lookup(self, feature_slice,
                                                          init_minval_for_oov,
                                                          init_maxval_for_oov)

  @property
  def feature_slice_to_tf_placeholder(self):
    if self._feature_slot.get_env().merge_vector:
      return self._merged_feature_slice_to_tf_placeholder
    return self._feature_slice_to_tf_placeholder


# The name users import.
FeatureColumn = FeatureColumnV1


class FeatureColumn3D(_FeatureColumnBase):
  """A sequence feature: embeddings are `[batch, max_seq_length, dim]`."""

  def __init__(self, feature_slot: FeatureSlot, max_seq_length: int, fc_name: str):
    # Set before the base registers the column: the bias lookup reads it.
    self._max_seq_length = max_seq_length
    super().__init__(feature_slot, fc_name)

  def embedding_lookup(self, feature_slice, max_seq_length=None, init_minval_for_oov=None,
                       init_maxval_for_oov=None):
    # The column's own max_seq_length wins (upstream ignores the argument). Upstream requires
    # the argument, so a slot with bias (whose lookup omits it) raised TypeError for every
    # sequence column; it is optional here so that such slots work.
    del max_seq_length
    return self._feature_slot.get_env()._seq_embedding_lookup(self, feature_slice,
                                                              self._max_seq_length,
                                                              init_minval_for_oov,
                                                              init_maxval_for_oov)

  def size_tensor_lookup(self):
    return self._feature_slot.get_env()._size_tensor_lookup(self)

  @property
  def max_seq_length(self):
    return self._max_seq_length

  @property
  def feature_slice_to_tf_placeholder(self):
    return self._feature_slice_to_tf_placeholder


class Env:
  """Registry of feature slots and, once dequeued, the per-feature embedding tensors."""

  def __init__(self, vocab_size_dict: Dict[int, int], params):
    self._vocab_size_dict = vocab_size_dict
    self._slot_id_to_feature_slot = {}
    self._tpu_features = None
    self._is_finalized = False
    self._qr_multi_hashing = params.qr_multi_hashing
    self._qr_hashing_threshold = params.qr_hashing_threshold
    self._qr_collision_rate = params.qr_collision_rate
    self._use_random_init_embedding_for_oov = params.use_random_init_embedding_for_oov
    self._merge_vector = params.merge_vector

  @property
  def merge_vector(self):
    return self._merge_vector

  @property
  def vocab_size_dict(self):
    return self._vocab_size_dict

  @property
  def slot_id_to_feature_slot(self):
    return self._slot_id_to_feature_slot

  @property
  def features(self):
    return self._tpu_features

  def set_feature_slot(self, slot_id, feature_slot):
    if self._is_finalized:
      return
    assert slot_id not in self._slot_id_to_feature_slot, (
        'Feature slot with id: {} can not be created more than once.'.format(slot_id))
    self._slot_id_to_feature_slot[slot_id] = feature_slot

  def finalize(self):
    assert not self._is_finalized, "Env can't be finalized more than once"
    self._is_finalized = True
    if self._merge_vector:
      self._merge_vector_in_same_slot()

  def is_finalized(self):
    # Upstream quirk kept: returns the bound method (always truthy), so
    # `assert env.is_finalized()` never fails.
    return self.is_finalized

  def set_tpu_features(self, tpu_features: dict):
    self._tpu_features = tpu_features
    if self._merge_vector:
      self._split_merged_embedding()

  def _merge_vector_in_same_slot(self):
    for slot_id, slot in self._slot_id_to_feature_slot.items():
      vec_dim = 0
      for feature_slice in slot.feature_slices:
        if slot.has_bias() and feature_slice.slice_index == 0:
          assert feature_slice.dim == 1, (
              'Bias in {} must have dim equal to 1, but actual dim is {}.'.format(
                  slot_id, feature_slice.dim))
          slot.merged_feature_slices.append(feature_slice)
          for column in slot.feature_columns:
            column._merged_feature_slice_to_tf_placeholder[feature_slice] = (
                column._feature_slice_to_tf_placeholder[feature_slice])
        else:
          vec_dim += feature_slice.dim
      if vec_dim > 0:
        merged_slice = slot.add_merged_feature_slice(dim=vec_dim)
        for column in slot.feature_columns:
          column._merged_feature_slice_to_tf_placeholder[merged_slice] = (
              tf.compat.v1.placeholder(tf.float32, [None, vec_dim]))

  def _split_merged_embedding(self):
    for slot in self._slot_id_to_feature_slot.values():
      vec_slices = [
          s for s in slot.feature_slices if not (slot.has_bias() and s.slice_index == 0)
      ]
      if not vec_slices:
        continue
      merged_index = slot.merged_feature_slices[-1].slice_index
      for column in slot.feature_columns:
        merged = self._tpu_features['{}_{}'.format(column.fc_name, merged_index)]
        parts = tf.split(merged, [s.dim for s in vec_slices], axis=1)
        for feature_slice in vec_slices:
          position = feature_slice.slice_index - (1 if slot.has_bias() else 0)
          self._tpu_features['{}_{}'.format(column.fc_name,
                                            feature_slice.slice_index)] = parts[position]

  def _is_qr_hashed(self, slot_id) -> bool:
    return (self._qr_multi_hashing and
            self._vocab_size_dict.get(slot_id, 1) > self._qr_hashing_threshold)

  def _lookup_features(self, feature_column, feature_slice, init_minval_for_oov,
                       init_maxval_for_oov):
    name = '{}_{}'.format(feature_column.fc_name, feature_slice.slice_index)
    slot_id = feature_column.feature_slot.slot_id()
    if self._is_qr_hashed(slot_id):
      # Quotient-remainder hashing: the embedding is the sum of the two part tables.
      # (Upstream references an undefined `slot_id` here and raises NameError; fixed.)
      embedding = self._tpu_features[name + '_0'] + self._tpu_features[name + '_1']
    else:
      embedding = self._tpu_features[name]
    if self._use_random_init_embedding_for_oov and init_minval_for_oov is not None:
      embedding = _replace_oov_rows(embedding, init_minval_for_oov, init_maxval_for_oov)
    return embedding

  def _check_same_slot(self, feature_column, feature_slice):
    assert feature_column.feature_slot is feature_slice._feature_slot, (
        'Feature column {} and slice {} belong to different slots.'.format(
            feature_column.fc_name, feature_slice))

  def _embedding_lookup(self, feature_column, feature_slice, init_minval_for_oov=None,
                        init_maxval_for_oov=None):
    self._check_same_slot(feature_column, feature_slice)
    if self._tpu_features is None:
      placeholders = feature_column._feature_slice_to_tf_placeholder
      if feature_slice not in placeholders:
        placeholders[feature_slice] = tf.compat.v1.placeholder(tf.float32,
                                                               [None, feature_slice.dim])
      return placeholders[feature_slice]
    return self._lookup_features(feature_column, feature_slice, init_minval_for_oov,
                                 init_maxval_for_oov)

  def _seq_embedding_lookup(self, feature_column, feature_slice, max_seq_length,
                            init_minval_for_oov=None, init_maxval_for_oov=None):
    self._check_same_slot(feature_column, feature_slice)
    if self._tpu_features is None:
      placeholders = feature_column._feature_slice_to_tf_placeholder
      if feature_slice not in placeholders:
        placeholders[feature_slice] = tf.compat.v1.placeholder(
            tf.float32, [None, max_seq_length, feature_slice.dim])
      return placeholders[feature_slice]
    return self._lookup_features(feature_column, feature_slice, init_minval_for_oov,
                                 init_maxval_for_oov)

  def _size_tensor_lookup(self, feature_column):
    if self._tpu_features is None:
      return tf.compat.v1.placeholder(tf.float32, [None, feature_column.max_seq_length],
                                      name='{}_size'.format(feature_column.fc_name))
    row_lengths = self._tpu_features['{}_0_row_lengths'.format(feature_column.fc_name)]
    return tf.sequence_mask(row_lengths, feature_column.max_seq_length, dtype=tf.int32)


def _replace_oov_rows(embedding, minval, maxval):
  """Replaces all-zero (never trained) rows by uniform random values in [minval, maxval)."""
  norm = tf.norm(embedding, axis=-1, keepdims=True)
  random = tf.random.uniform(tf.shape(embedding), minval=minval, maxval=maxval,
                             dtype=embedding.dtype)
  return tf.where(norm < _OOV_NORM_EPSILON, random, embedding)
