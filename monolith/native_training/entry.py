"""Hash-table configuration objects: optimizers, initializers, compressors, segments and the
table config instance handed to hash_table_ops.hash_table_from_config."""
from typing import Callable, List, Optional, Union

import tensorflow as tf

from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2
from monolith.native_training.runtime.hash_table.compressor import float_compressor_pb2
from monolith.native_training.runtime.hash_table.initializer import initializer_config_pb2
from monolith.native_training.runtime.hash_table.optimizer import optimizer_pb2


class _OneofConfig(object):
  """Fills oneof member `_FIELD` of `_PROTO` with every constructor argument that is not None
  (argument names are the proto field names unless `_RENAMES` maps them)."""
  _PROTO = None
  _FIELD = None
  _RENAMES = {}

  def __init__(self, **kwargs):
    self._kwargs = kwargs

  def as_proto(self):
    proto = self._PROTO()
    member = getattr(proto, self._FIELD)
    member.SetInParent()
    for name, value in self._kwargs.items():
      if value is not None:
        setattr(member, self._RENAMES.get(name, name), value)
    return proto


class SgdOptimizer(_OneofConfig):
  _PROTO, _FIELD = optimizer_pb2.OptimizerConfig, "sgd"

  def __init__(self, learning_rate=None):
    super().__init__(learning_rate=learning_rate)


class AdagradOptimizer(_OneofConfig):
  _PROTO, _FIELD = optimizer_pb2.OptimizerConfig, "adagrad"

  def __init__(self,
               learning_rate=None,
               initial_accumulator_value=None,
               hessian_compression_times=1,
               warmup_steps=0,
               weight_decay_factor=0.0):
    super().__init__(learning_rate=learning_rate,
                     initial_accumulator_value=initial_accumulator_value,
                     hessian_compression_times=hessian_compression_times,
                     warmup_steps=warmup_steps,
                     weight_decay_factor=weight_decay_factor)


class FtrlOptimizer(_OneofConfig):
  _PROTO, _FIELD = optimizer_pb2.OptimizerConfig, "ftrl"
  _RENAMES = {
      "l1_regularization": "l1_regularization_strength",
      "l2_regularization": "l2_regularization_strength",
  }

  def __init__(self,
               learning_rate=None,
               initial_accumulator_value=None,
               beta=None,
               warmup_steps=0,
               l1_regularization=None,
               l2_regularization=None):
    super().__init__(learning_rate=learning_rate,
                     initial_accumulator_value=initial_accumulator_value,
                     beta=beta,
                     warmup_steps=warmup_steps,
                     l1_regularization=l1_regularization,
                     l2_regularization=l2_regularization)


class AdamOptimizer(_OneofConfig):
  _PROTO, _FIELD = optimizer_pb2.OptimizerConfig, "adam"

  def __init__(self,
               learning_rate=None,
               beta1=None,
               beta2=None,
               epsilon=None,
               weight_decay_factor=None,
               use_nesterov=None):
    super().__init__(learning_rate=learning_rate,
                     beta1=beta1,
                     beta2=beta2,
                     epsilon=epsilon,
                     weight_decay_factor=weight_decay_factor,
                     use_nesterov=use_nesterov)


class ZerosInitializer(_OneofConfig):
  _PROTO, _FIELD = initializer_config_pb2.InitializerConfig, "zeros"

  def __init__(self):
    super().__init__()


class ConstantsInitializer(_OneofConfig):
  _PROTO, _FIELD = initializer_config_pb2.InitializerConfig, "constants"

  def __init__(self, constant):
    super().__init__(constant=constant)


class RandomUniformInitializer(_OneofConfig):
  _PROTO, _FIELD = initializer_config_pb2.InitializerConfig, "random_uniform"

  def __init__(self, minval=None, maxval=None):
    super().__init__(minval=minval, maxval=maxval)


class Fp32Compressor(_OneofConfig):
  _PROTO, _FIELD = float_compressor_pb2.FloatCompressorConfig, "fp32"

  def __init__(self):
    super().__init__()


class Fp16Compressor(_OneofConfig):
  _PROTO, _FIELD = float_compressor_pb2.FloatCompressorConfig, "fp16"

  def __init__(self):
    super().__init__()


class FixedR8Compressor(_OneofConfig):
  _PROTO, _FIELD = float_compressor_pb2.FloatCompressorConfig, "fixed_r8"
  _RENAMES = {"fixed_range": "r"}

  def __init__(self, fixed_range=1.0):
    super().__init__(fixed_range=fixed_range)


class OneBitCompressor(_OneofConfig):
  _PROTO, _FIELD = float_compressor_pb2.FloatCompressorConfig, "one_bit"

  def __init__(self, step_size=200, amplitude=0.05):
    super().__init__(step_size=step_size, amplitude=amplitude)


def _as_proto(obj):
  return obj.as_proto() if hasattr(obj, "as_proto") else obj


def CombineAsSegment(dim_size: int, initializer, optimizer,
                     compressor) -> embedding_hash_table_pb2.EntryConfig.Segment:
  """One table segment; each part may be a config object above or a ready proto."""
  segment = embedding_hash_table_pb2.EntryConfig.Segment(dim_size=dim_size)
  segment.init_config.CopyFrom(_as_proto(initializer))
  segment.opt_config.CopyFrom(_as_proto(optimizer))
  segment.comp_config.CopyFrom(_as_proto(compressor))
  return segment


class CuckooHashTableConfig(object):
  """Selects the cuckoo table; eviction runs when feature_evict_every_n_hours > 0."""

  def __init__(self, initial_capacity=1, feature_evict_every_n_hours=0):
    self._initial_capacity = initial_capacity
    self._feature_evict_every_n_hours = feature_evict_every_n_hours

  def mutate_table(self, table_config: embedding_hash_table_pb2.EmbeddingHashTableConfig):
    table_config.initial_capacity = self._initial_capacity
    table_config.cuckoo.SetInParent()
    if self._feature_evict_every_n_hours > 0:
      table_config.enable_feature_eviction = True
      table_config.feature_evict_every_n_hours = self._feature_evict_every_n_hours


class HashTableConfigInstance(object):
  """A table config plus one learning rate (number or callable) per segment."""

  def __init__(self,
               table_config: embedding_hash_table_pb2.EmbeddingHashTableConfig,
               learning_rate_fns: List[Union[float, Callable[[], tf.Tensor]]],
               extra_restore_names: Optional[List[str]] = None):
    self._table_config = table_config
    self._learning_rate_fns = learning_rate_fns
    self._extra_restore_names = extra_restore_names or []

  @property
  def table_config(self) -> embedding_hash_table_pb2.EmbeddingHashTableConfig:
    return self._table_config

  @property
  def learning_rate_fns(self):
    return self._learning_rate_fns

  @property
  def extra_restore_names(self) -> List[str]:
    return self._extra_restore_names

  def call_learning_rate_fns(self) -> tf.Tensor:
    """Stacks one float32 learning rate per segment under name scope `learning_rate`."""
    if not self._learning_rate_fns:
      raise Exception("Learning_rate_fns must be not empty.")
    with tf.name_scope("learning_rate"):
      rates = []
      for fn in self._learning_rate_fns:
        value = fn() if callable(fn) else fn
        rates.append(tf.cast(value, tf.float32))
      return tf.stack(rates)

  def __str__(self):
    return "TableConfigInstance: {}, LearningRateFns: {}".format(self._table_config,
                                                                 self._learning_rate_fns)
