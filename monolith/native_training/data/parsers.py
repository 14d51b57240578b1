"""Parsing of Example / ExampleBatch / Instance batches, and sharding of their fids for the fused
embedding-to-layout ops (fused_layout.md §6, §7).

The parse functions return the dense and LineId features, plus the sparse features:
- by default, each requested sparse feature as a ragged [batch, None] int64 tensor of its fids
  (fid_v1 values converted to v2; an ExampleBatch SHARED list repeated on every row);
- in fused-layout mode (`ParserCtx.enable_fused_layout`), a variant tensor holding the parsed
  protos under `ParserCtx.sharding_sparse_fids_sparse_features_key`; `sharding_sparse_fids` turns
  it into per-(table, shard) fid lists and the offsets `distribution_ops.fused_embedding_to_layout`
  consumes.
"""
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import tensorflow as tf
from absl import flags, logging

from idl.matrix.proto.example_pb2 import FeatureConfigs
from monolith.native_training.data import utils
from monolith.native_training.runtime.ops import gen_monolith_ops

FLAGS = flags.FLAGS
if 'dataset_use_dataservice' not in FLAGS:
  flags.DEFINE_bool('dataset_use_dataservice', False,
                    'Whether the input pipeline runs in tf.data service (shards fids there).')

_FAKE_FEATURE = '__FAKE_FEATURE__'

# dtypes of the LineId fields usable as extra features; other extras are float32.
_LINE_ID_DTYPES = {
    'uid': tf.int64,
    'req_time': tf.int64,
    'item_id': tf.int64,
    'actions': tf.int64,
    'chnid': tf.int64,
    'pre_actions': tf.int64,
    'special_strategies': tf.int64,
    'is_draw': tf.int64,
    'rank': tf.int64,
    'sample_rate': tf.float32,
    'device_type': tf.string,
    'cid': tf.string,
    'user_id': tf.string,
    'data_source_name': tf.string,
}


class ShardingSparseFidsOpParams(NamedTuple):
  num_ps: int
  use_native_multi_hash_table: bool
  unique: Callable[[], bool]
  transfer_float16: bool
  sub_table_name_to_config: Dict[str, Any]
  feature_configs: FeatureConfigs
  enable_gpu_emb: bool
  use_gpu: bool


class ParserCtx(object):
  sharding_sparse_fids_features_prefix = '__sharding_sparse_fids__'
  sharding_sparse_fids_sparse_features_key = '__sharding_sparse_fids__sparse_features'

  def __init__(self, enable_fused_layout: bool = False):
    self.enable_fused_layout = enable_fused_layout
    self.parser_type = None
    self.sharding_sparse_fids_op_params: Optional[ShardingSparseFidsOpParams] = None
    self._kv = {}
    self._prev = None

  def set(self, key, value):
    self._kv[key] = value

  def get(self, key, default=None):
    return self._kv.get(key, default)

  def __enter__(self):
    global _default_parser_ctx
    self._prev = _default_parser_ctx
    _default_parser_ctx = self
    return self

  def __exit__(self, exc_type, exc_val, exc_tb):
    global _default_parser_ctx
    _default_parser_ctx = self._prev
    self._prev = None

  @classmethod
  def sharding_sparse_fids_features_insert_to_features(cls, inputs: Dict, features: Dict):
    if not isinstance(inputs, dict):
      raise ValueError('inputs must be a dict, got {}'.format(type(inputs)))
    for k, v in inputs.items():
      if isinstance(v, dict):
        for sub_k, sub_v in v.items():
          features[cls.sharding_sparse_fids_features_prefix + k + '/' + sub_k] = sub_v
      elif isinstance(v, list):
        raise ValueError('not support')
      else:
        features[cls.sharding_sparse_fids_features_prefix + k] = v

  @classmethod
  def sharding_sparse_fids_features_parse_from_features(cls, features: Dict) -> Dict:
    prefix = cls.sharding_sparse_fids_features_prefix
    out = {}
    for key in [k for k in features if k.startswith(prefix)]:
      value = features.pop(key)
      parts = key[len(prefix):].split('/')
      node = out
      for p in parts[:-1]:
        node = node.setdefault(p, {})
      node[parts[-1]] = value
    return out


_default_parser_ctx: Optional[ParserCtx] = None


def get_default_parser_ctx() -> ParserCtx:
  global _default_parser_ctx
  if _default_parser_ctx is None:
    _default_parser_ctx = ParserCtx(False)
  return _default_parser_ctx


def _dense_specs(dense_features, dense_feature_shapes, dense_feature_types, extra_features,
                 extra_feature_shapes):
  dense_features = list(dense_features or [])
  dense_feature_shapes = list(dense_feature_shapes or [])
  dense_feature_types = list(dense_feature_types or [tf.float32] * len(dense_features))
  extra_features = list(extra_features or [])
  extra_feature_shapes = list(extra_feature_shapes or [])
  if len(dense_features) != len(dense_feature_shapes) or len(dense_features) != len(
      dense_feature_types):
    raise ValueError('dense_features, dense_feature_shapes and dense_feature_types differ in '
                     'length: {} {} {}'.format(dense_features, dense_feature_shapes,
                                               dense_feature_types))
  if len(extra_features) != len(extra_feature_shapes):
    raise ValueError('extra_features and extra_feature_shapes differ in length: {} {}'.format(
        extra_features, extra_feature_shapes))
  names = dense_features + extra_features
  shapes = dense_feature_shapes + extra_feature_shapes
  dtypes = [tf.as_dtype(t) for t in dense_feature_types]
  dtypes += [_LINE_ID_DTYPES.get(name, tf.float32) for name in extra_features]
  if not names:
    names, shapes, dtypes = [_FAKE_FEATURE], [1], [tf.float32]
  return names, shapes, dtypes, extra_features


def _parse(parser_type: str, fused_op, ragged_op, tensor: tf.Tensor, sparse_features, dense_features,
           dense_feature_shapes, dense_feature_types, extra_features,
           extra_feature_shapes) -> Dict[str, tf.Tensor]:
  """Body shared by the parse_* functions: `fused_op` (fused-layout mode) yields the dense/extra
  features and the parsed protos, whose sparse fids are left to the sharding op; `ragged_op`
  yields them and the fids of `sparse_features`."""
  parser_ctx = get_default_parser_ctx()
  parser_ctx.parser_type = parser_type
  names, shapes, dtypes, extra = _dense_specs(dense_features, dense_feature_shapes,
                                              dense_feature_types, extra_features,
                                              extra_feature_shapes)
  if not parser_ctx.enable_fused_layout:
    sparse_features = list(sparse_features or [])
    both = sorted(set(sparse_features) & set(names))
    if both:
      raise ValueError('features requested both as sparse and as dense/extra: {}'.format(both))
    tensors, values, splits = ragged_op(pb_input=tensor,
                                        names=names,
                                        shapes=shapes,
                                        dtypes=dtypes,
                                        extra_names=extra,
                                        sparse_names=sparse_features,
                                        num_sparse=len(sparse_features))
    features = dict(zip(names, tensors))
    features.pop(_FAKE_FEATURE, None)
    for name, fids, row_splits in zip(sparse_features, values, splits):
      features[name] = tf.RaggedTensor.from_row_splits(fids, row_splits, validate=False)
    return features
  tensors, protos = fused_op(pb_input=tensor,
                             names=names,
                             shapes=shapes,
                             dtypes=dtypes,
                             extra_names=extra)
  features = dict(zip(names, tensors))
  features.pop(_FAKE_FEATURE, None)
  params = parser_ctx.sharding_sparse_fids_op_params
  if params is not None and (params.use_gpu or FLAGS['dataset_use_dataservice'].value):
    sharding_sparse_fids_with_context(protos, features, parser_ctx)
  else:
    features[ParserCtx.sharding_sparse_fids_sparse_features_key] = protos
  return features


def parse_examples(tensor: tf.Tensor,
                   sparse_features: List[str],
                   dense_features: List[str] = None,
                   dense_feature_shapes: List[int] = None,
                   dense_feature_types: List[tf.DType] = None,
                   extra_features: List[str] = None,
                   extra_feature_shapes: List[int] = None) -> Dict[str, tf.Tensor]:
  """Parses a vector of serialized Examples (or a variant of parsed ones)."""
  return _parse('example', gen_monolith_ops.parse_examples_v2, gen_monolith_ops.parse_examples,
                tensor, sparse_features, dense_features, dense_feature_shapes, dense_feature_types,
                extra_features, extra_feature_shapes)


def parse_example_batch(tensor: tf.Tensor,
                        sparse_features: List[str],
                        dense_features: List[str] = None,
                        dense_feature_shapes: List[int] = None,
                        dense_feature_types: List[tf.DType] = None,
                        extra_features: List[str] = None,
                        extra_feature_shapes: List[int] = None) -> Dict[str, tf.Tensor]:
  """Parses one serialized ExampleBatch (element 0 of `tensor`)."""
  return _parse('examplebatch', gen_monolith_ops.parse_example_batch_v2,
                gen_monolith_ops.parse_example_batch, tf.reshape(tensor, [-1]), sparse_features,
                dense_features, dense_feature_shapes, dense_feature_types, extra_features,
                extra_feature_shapes)


def parse_instances(tensor: tf.Tensor,
                    fidv1_features: List[int] = None,
                    fidv2_features: List[str] = None,
                    dense_features: List[str] = None,
                    dense_feature_shapes: List[int] = None,
                    dense_feature_types: List[tf.DType] = None,
                    extra_features: List[str] = None,
                    extra_feature_shapes: List[int] = None) -> Dict[str, tf.Tensor]:
  """Parses a vector of serialized Instances (or a variant of parsed ones). Outside fused-layout
  mode, the flat v1 fids of each slot of `fidv1_features` come out under the slot's feature name
  (`utils.get_slot_feature_name`), the named features of `fidv2_features` under their names."""
  fidv1_features = list(fidv1_features or [])
  fidv2_features = list(fidv2_features or [])

  def fused_op(**kwargs):
    return gen_monolith_ops.parse_instances_v2(fidv1_features=fidv1_features,
                                               fidv2_features=fidv2_features,
                                               **kwargs)

  sparse_features = [utils.get_slot_feature_name(slot) for slot in fidv1_features] + fidv2_features
  return _parse('instance', fused_op, gen_monolith_ops.parse_instances, tensor, sparse_features,
                dense_features, dense_feature_shapes, dense_feature_types, extra_features,
                extra_feature_shapes)


def sharding_sparse_fids(tensor: tf.Tensor,
                         ps_num: int,
                         feature_cfgs: FeatureConfigs,
                         unique: bool,
                         input_type: str,
                         parallel_flag: int = 0,
                         fid_list_ret_list: bool = False,
                         version: int = 5):
  """Shards the fids of parsed protos over `ps_num` shards (fid mod ps_num).

  Returns the 14-tuple (fid_list, fid_offset, feature_offset, nfl_offset, batch_size, nfl_size,
  feature_size, fid_size, emb_size, fid_list_row_splits, fid_list_row_splits_size,
  fid_list_emb_row_lenth, fid_list_table_row_length, fid_list_shard_row_lenth); items a version
  does not produce are None. Unless `fid_list_ret_list` (or version 4), the per-(table, shard)
  lists are dicts keyed "<table>:<ps>".
  """
  assert input_type in ('example', 'examplebatch', 'example_batch', 'instance'), input_type
  if input_type == 'example_batch':
    input_type = 'examplebatch'
  if ps_num == 0:
    ps_num = 1
  tables = sorted({cfg.table for cfg in feature_cfgs.feature_configs.values()})
  n = len(tables) * ps_num
  attrs = dict(pb_input=tensor,
               ps_num=ps_num,
               feature_cfgs=feature_cfgs.SerializeToString(),
               unique=unique,
               input_type=input_type,
               parallel_flag=parallel_flag)
  nfl_size = feature_size = fid_size = emb_size = None
  fid_list_emb_row_lenth = fid_list_table_row_length = fid_list_shard_row_lenth = None
  fid_list_row_splits = [None] * n
  fid_list_row_splits_size = [None] * n
  if version == 5:
    (fid_list, fid_list_row_splits, fid_list_row_splits_size, fid_offset, feature_offset,
     nfl_offset, batch_size, nfl_size, feature_size, fid_size,
     emb_size) = gen_monolith_ops.sharding_sparse_fids_v5(N=n, **attrs)
  elif version == 4:
    (fid_list, fid_list_row_splits, fid_list_table_row_length, fid_list_shard_row_lenth,
     fid_list_emb_row_lenth, fid_offset, feature_offset, nfl_offset,
     batch_size) = gen_monolith_ops.sharding_sparse_fids_v4(**attrs)
  elif version == 3:
    (fid_list, fid_list_row_splits, fid_offset, feature_offset, nfl_offset,
     batch_size) = gen_monolith_ops.sharding_sparse_fids_v3(N=n,
                                                            single_thread_feature_watermark=320000,
                                                            **attrs)
  elif version == 2:
    (fid_list, fid_list_row_splits, fid_offset, feature_offset, nfl_offset,
     batch_size) = gen_monolith_ops.sharding_sparse_fids_v2(N=n, **attrs)
  else:
    (fid_list, fid_offset, feature_offset, nfl_offset,
     batch_size) = gen_monolith_ops.sharding_sparse_fids(N=n, **attrs)
  if version != 4:
    fid_list, fid_list_row_splits = list(fid_list), list(fid_list_row_splits)
    fid_list_row_splits_size = list(fid_list_row_splits_size)
    assert len(fid_list) == len(fid_list_row_splits) == n
    assert len(fid_list_row_splits_size) == n
  if not fid_list_ret_list and version != 4:

    def keyed(tensors):
      return {
          '{}:{}'.format(table, ps): tensors[ti * ps_num + ps]
          for ti, table in enumerate(tables)
          for ps in range(ps_num)
      }

    fid_list = keyed(fid_list)
    fid_list_row_splits = keyed(fid_list_row_splits)
    fid_list_row_splits_size = keyed(fid_list_row_splits_size)
  return (fid_list, fid_offset, feature_offset, nfl_offset, batch_size, nfl_size, feature_size,
          fid_size, emb_size, fid_list_row_splits, fid_list_row_splits_size, fid_list_emb_row_lenth,
          fid_list_table_row_length, fid_list_shard_row_lenth)


def sharding_sparse_fids_with_context(sparse_features: tf.Tensor,
                                      features: Dict,
                                      parser_ctx: ParserCtx = None):
  """Shards with the params of `parser_ctx` and inserts the results into `features` (§7.4)."""
  parser_ctx = parser_ctx or get_default_parser_ctx()
  params = parser_ctx.sharding_sparse_fids_op_params
  version = 4 if params.enable_gpu_emb else 5
  (fid_list, fid_offset, feature_offset, nfl_offset, batch_size, nfl_size, feature_size, fid_size,
   emb_size, fid_list_row_splits, fid_list_row_splits_size, fid_list_emb_row_lenth,
   fid_list_table_row_length, fid_list_shard_row_lenth) = sharding_sparse_fids(
       sparse_features,
       ps_num=params.num_ps,
       feature_cfgs=params.feature_configs,
       unique=params.unique(),
       input_type=parser_ctx.parser_type,
       parallel_flag=1 if params.use_gpu else 0,
       fid_list_ret_list=params.enable_gpu_emb,
       version=version)
  if version == 4:
    inserted = {
        'shards_value': fid_list,
        'shards_row_lengths': fid_list_shard_row_lenth,
        'shards_table_row_lengths': fid_list_table_row_length,
        'fid_offset': fid_offset,
        'feature_offset': feature_offset,
        'nfl_offset': nfl_offset,
        'batch_size': batch_size,
        'fid_list_emb_row_lenth': fid_list_emb_row_lenth,
    }
  else:
    inserted = {
        'shards': fid_list,
        'fid_offset': fid_offset,
        'feature_offset': feature_offset,
        'nfl_offset': nfl_offset,
        'batch_size': batch_size,
        'nfl_size': nfl_size,
        'feature_size': feature_size,
        'fid_size': fid_size,
        'emb_size': emb_size,
    }
    if params.use_native_multi_hash_table:
      inserted['shards_row_split'] = fid_list_row_splits
      inserted['shards_row_split_size'] = fid_list_row_splits_size
  ParserCtx.sharding_sparse_fids_features_insert_to_features(inserted, features)
  logging.log_first_n(logging.INFO, 'sharding_sparse_fids_with_context: version %d', 1, version)
