"""Tests of the fused-layout parse functions, ParserCtx and sharding_sparse_fids (every version on
the worked example of fused_layout.md §9, Instance routing, dense/LineId features)."""
import numpy as np
import tensorflow as tf

from idl.matrix.proto.example_pb2 import (Example, ExampleBatch, FeatureConfig, FeatureConfigs,
                                          FeatureListType, OutConfig, OutType, PoolingType,
                                          SliceConfig, TensorShape)
from idl.matrix.proto.proto_parser_pb2 import Instance
from monolith.native_training.data.parsers import (ParserCtx, get_default_parser_ctx,
                                                   parse_example_batch, parse_examples,
                                                   parse_instances, sharding_sparse_fids)

tf.compat.v1.disable_v2_behavior()
KEY = ParserCtx.sharding_sparse_fids_sparse_features_key


def worked_cfgs():
  cfgs = FeatureConfigs()
  cfgs.feature_configs['fa'].CopyFrom(
      FeatureConfig(table='t1', pooling_type=PoolingType.SUM, slice_dims=[1, 2]))
  cfgs.feature_configs['fb'].CopyFrom(
      FeatureConfig(table='t2', pooling_type=PoolingType.MEAN, slice_dims=[2]))
  cfgs.out_configs['raw'].CopyFrom(
      OutConfig(out_type=OutType.NONE,
                slice_configs=[
                    SliceConfig(feature_name='fa', start=0, end=3),
                    SliceConfig(feature_name='fb', start=0, end=2)
                ],
                shape=[TensorShape(dims=[-1, 3]), TensorShape(dims=[-1, 2])]))
  return cfgs


def worked_batch():
  eb = ExampleBatch(batch_size=2)
  fa = eb.named_feature_list.add(name='fa', type=FeatureListType.INDIVIDUAL)
  fa.feature.add().fid_v2_list.value.extend([10, 13])
  fa.feature.add().fid_v2_list.value.extend([13, 4])
  fb = eb.named_feature_list.add(name='fb', type=FeatureListType.SHARED)
  fb.feature.add().fid_v2_list.value.extend([7, 8])
  return eb


class ParserCtxTest(tf.test.TestCase):

  def test_insert_and_parse_roundtrip(self):
    features = {'dense': 1}
    ParserCtx.sharding_sparse_fids_features_insert_to_features(
        {'shards': {'t:0': 'a', 't:1': 'b'}, 'fid_offset': 'c'}, features)
    self.assertEqual(
        features, {
            'dense': 1,
            '__sharding_sparse_fids__shards/t:0': 'a',
            '__sharding_sparse_fids__shards/t:1': 'b',
            '__sharding_sparse_fids__fid_offset': 'c'
        })
    parsed = ParserCtx.sharding_sparse_fids_features_parse_from_features(features)
    self.assertEqual(parsed, {'shards': {'t:0': 'a', 't:1': 'b'}, 'fid_offset': 'c'})
    self.assertEqual(features, {'dense': 1})
    with self.assertRaisesRegex(ValueError, 'not support'):
      ParserCtx.sharding_sparse_fids_features_insert_to_features({'x': [1]}, {})
    with self.assertRaises(ValueError):
      ParserCtx.sharding_sparse_fids_features_insert_to_features([1], {})

  def test_context_manager_swaps_default(self):
    outer = get_default_parser_ctx()
    self.assertFalse(outer.enable_fused_layout)
    with ParserCtx(enable_fused_layout=True) as ctx:
      self.assertIs(get_default_parser_ctx(), ctx)
      ctx.set('k', 3)
      self.assertEqual(ctx.get('k'), 3)
    self.assertIs(get_default_parser_ctx(), outer)

  def test_without_fused_layout_is_refused(self):
    with ParserCtx(enable_fused_layout=False):
      with self.assertRaisesRegex(NotImplementedError, 'fused-layout mode'):
        parse_examples(tf.constant([b'']), sparse_features=['a'])


class ShardingSparseFidsTest(tf.test.TestCase):

  def _shard(self, version, ret_list=True, parallel_flag=0):
    with ParserCtx(enable_fused_layout=True) as ctx:
      variant = parse_example_batch(tf.constant([worked_batch().SerializeToString()]),
                                    sparse_features=[])[KEY]
      self.assertEqual(ctx.parser_type, 'examplebatch')
    return sharding_sparse_fids(variant, 2, worked_cfgs(), True, 'example_batch',
                                parallel_flag=parallel_flag, fid_list_ret_list=ret_list,
                                version=version)

  def test_worked_example_every_version(self):
    packed_v3 = [0, 4294967296, 4294967296, 3, 12884901888, 8589934592]
    packed_v12 = [0, 4294967296, 4294967296, 1, 12884901888, 8589934592]
    with tf.Graph().as_default(), self.session() as sess:
      outs = {v: self._shard(v) for v in (1, 2, 3, 4, 5)}
      # Tuple positions: 0 fid_list, 1 fid_offset, 2 feature_offset, 3 nfl_offset, 4 batch_size,
      # 5-8 nfl/feature/fid/emb sizes, 9 row splits, 10 row split sizes, 11 emb_row_lenth,
      # 12 table_row_length, 13 shard_row_lenth.
      res = sess.run({
          v: {i: x for i, x in enumerate(o)
              if x is not None and not (isinstance(x, list) and x[0] is None)}
          for v, o in outs.items()
      })
    for v in (1, 2, 3, 5):
      r = res[v]
      self.assertEqual([list(x) for x in r[0]], [[10, 4], [13], [8], [7]])
      self.assertAllEqual(r[1], packed_v12 if v < 3 else packed_v3)
      self.assertAllEqual(r[2], [0, 2, 4, 6])
      self.assertAllEqual(r[3], [0, 0x80000002, 4])
      self.assertAllEqual(np.reshape(r[4], [-1]), [2])
    for v in (2, 3, 5):
      self.assertEqual([list(x) for x in res[v][9]], [[0, 2], [0, 1], [0, 1], [0, 1]])
    self.assertNotIn(9, res[1])
    r = res[5]
    self.assertAllEqual(r[5], [3])
    self.assertAllEqual(r[6], [4])
    self.assertAllEqual(r[7], [6])
    self.assertAllEqual(r[8], [6, 3, 2, 2])
    self.assertEqual([list(x) for x in r[10]], [[2], [2], [2], [2]])
    r = res[4]  # shard-major concatenations
    self.assertAllEqual(r[0], [10, 4, 8, 13, 7])
    self.assertAllEqual(r[1], packed_v3)
    self.assertAllEqual(r[9], [0, 2, 0, 1, 0, 1, 0, 1])
    self.assertAllEqual(r[11], [6, 2, 3, 2])
    self.assertAllEqual(r[12], [2, 1, 1, 1])
    self.assertAllEqual(r[13], [3, 2])

  def test_dict_keys_and_parallel_equal(self):
    with tf.Graph().as_default(), self.session() as sess:
      serial = self._shard(5, ret_list=False)
      parallel = self._shard(5, ret_list=False, parallel_flag=1)
      self.assertEqual(sorted(serial[0]), ['t1:0', 't1:1', 't2:0', 't2:1'])
      s, p = sess.run([serial[:4], parallel[:4]])
    self.assertAllEqual(s[0]['t1:0'], [10, 4])
    for a, b in zip(s[1:], p[1:]):
      self.assertAllEqual(a, b)

  def test_instances_route_v1_fids_by_slot(self):
    cfgs = FeatureConfigs()
    cfgs.feature_configs['fc_slot_3'].CopyFrom(FeatureConfig(table='t', slice_dims=[1]))
    cfgs.feature_configs['named'].CopyFrom(FeatureConfig(table='t', slice_dims=[1]))
    slot3_v1 = (3 << 54) | 5
    inst0 = Instance(fid=[slot3_v1, (4 << 54) | 6])  # slot 4 is not configured
    feat = inst0.feature.add(name='named', fid=[(9 << 48) | 1])
    feat.fid_list.add(value=[(9 << 48) | 2])
    inst1 = Instance()
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        variant = parse_instances(tf.constant([inst0.SerializeToString(), inst1.SerializeToString()]))[KEY]
      out = sharding_sparse_fids(variant, 1, cfgs, False, 'instance', fid_list_ret_list=True,
                                 version=3)
      fid_list, fid_offset, feature_offset, nfl_offset = sess.run(list(out[:4]))
    # Features sorted: fc_slot_3, named. The v1 fid is converted to v2: slot at bit 48.
    self.assertAllEqual(fid_list[0], [(3 << 48) | 5, (9 << 48) | 1, (9 << 48) | 2])
    self.assertAllEqual(feature_offset, [0, 1, 1, 3, 3])
    self.assertAllEqual(nfl_offset, [0, 2, 5])
    self.assertAllEqual(fid_offset, [0, 1, 2])


class DenseParseTest(tf.test.TestCase):

  def test_dense_and_extra_features(self):
    ex = Example(label=[1.5])
    ex.line_id.uid = 77
    ex.line_id.req_time = 123
    ex.named_feature.add(name='price').feature.float_list.value.extend([2.0, 3.0])
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        features = parse_examples(tf.constant([ex.SerializeToString(), Example().SerializeToString()]),
                                  sparse_features=[],
                                  dense_features=['price'],
                                  dense_feature_shapes=[2],
                                  dense_feature_types=[tf.float32],
                                  extra_features=['label', 'uid', 'req_time'],
                                  extra_feature_shapes=[1, 1, 1])
      self.assertIn(KEY, features)
      self.assertNotIn('__FAKE_FEATURE__', features)
      self.assertEqual(features['uid'].dtype, tf.int64)
      got = sess.run({k: features[k] for k in ('price', 'label', 'uid', 'req_time')})
    self.assertAllClose(got['price'], [[2, 3], [0, 0]])
    self.assertAllClose(got['label'], [[1.5], [0]])
    self.assertAllEqual(got['uid'], [[77], [0]])
    self.assertAllEqual(got['req_time'], [[123], [0]])


if __name__ == '__main__':
  tf.test.main()
