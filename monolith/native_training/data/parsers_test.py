"""Tests of the parse functions (ragged sparse features by default, protos in fused-layout mode),
ParserCtx and sharding_sparse_fids (every version on the worked example of fused_layout.md §9,
Instance routing, dense/LineId features)."""
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


def v1(slot, fid):
  return (slot << 54) | fid


def v2(slot, fid):
  return (slot << 48) | fid


class RaggedParseTest(tf.test.TestCase):
  """The default (non-fused) mode: each sparse feature as a ragged [batch, None] int64 tensor."""

  def run_parse(self, fn, tensor, **kwargs):
    with tf.Graph().as_default(), self.session() as sess:
      features = fn(tf.constant(tensor), **kwargs)
      for v in features.values():
        if isinstance(v, tf.RaggedTensor):
          self.assertEqual(v.dtype, tf.int64)
          self.assertEqual(v.shape.rank, 2)
      got = sess.run(features)
    return {k: v.to_list() if hasattr(v, 'to_list') else v for k, v in got.items()}

  def test_examples(self):
    ex0 = Example()
    ex0.named_feature.add(name='a').feature.fid_v2_list.value.extend([v2(1, 10), v2(1, 11)])
    ex0.named_feature.add(name='price').feature.float_list.value.extend([2.5])
    ex1 = Example(label=[1.0])  # no sparse feature at all
    ex2 = Example()
    ex2.named_feature.add(name='a').feature.fid_v1_list.value.extend([v1(3, 7)])
    ex2.named_feature.add(name='b').feature.fid_v2_list.value.extend([v2(2, 1)])
    ex2.named_feature.add(name='a').feature.fid_v2_list.value.extend([v2(1, 12)])  # repeated name
    got = self.run_parse(parse_examples, [e.SerializeToString() for e in (ex0, ex1, ex2)],
                         sparse_features=['b', 'a', 'missing'],
                         dense_features=['price'],
                         dense_feature_shapes=[1],
                         extra_features=['label'],
                         extra_feature_shapes=[1])
    self.assertEqual(sorted(got), ['a', 'b', 'label', 'missing', 'price'])
    # fid_v1 values are converted to v2 (slot moved from bit 54 to bit 48).
    self.assertEqual(got['a'], [[v2(1, 10), v2(1, 11)], [], [v2(3, 7), v2(1, 12)]])
    self.assertEqual(got['b'], [[], [], [v2(2, 1)]])
    self.assertEqual(got['missing'], [[], [], []])
    self.assertAllClose(got['price'], [[2.5], [0], [0]])
    self.assertAllClose(got['label'], [[0], [1], [0]])

  def test_example_batch_shared_list_repeats(self):
    eb = worked_batch()  # fa INDIVIDUAL, fb SHARED, batch_size 2
    got = self.run_parse(parse_example_batch, [eb.SerializeToString()],
                         sparse_features=['fa', 'fb', 'absent'])
    self.assertEqual(got['fa'], [[10, 13], [13, 4]])
    self.assertEqual(got['fb'], [[7, 8], [7, 8]])
    self.assertEqual(got['absent'], [[], []])

  def test_example_batch_individual_list_of_wrong_length(self):
    eb = worked_batch()
    eb.batch_size = 3
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'INDIVIDUAL feature list fa'):
      self.run_parse(parse_example_batch, [eb.SerializeToString()], sparse_features=['fa'])

  def test_instances(self):
    inst0 = Instance(fid=[v1(3, 5), v1(4, 6), v1(3, 8)], label=[1.0])
    inst0.feature.add(name='named', fid=[v2(9, 1)]).fid_list.add(value=[v2(9, 2)])
    inst1 = Instance(fid=[v1(4, 9)])
    got = self.run_parse(parse_instances, [inst0.SerializeToString(), inst1.SerializeToString()],
                         fidv1_features=[3, 5],
                         fidv2_features=['named'],
                         extra_features=['label'],
                         extra_feature_shapes=[1])
    self.assertEqual(sorted(got), ['label', 'named', 'slot_3', 'slot_5'])
    self.assertEqual(got['slot_3'], [[v2(3, 5), v2(3, 8)], []])  # slot 4 was not requested
    self.assertEqual(got['slot_5'], [[], []])
    self.assertEqual(got['named'], [[v2(9, 1), v2(9, 2)], []])
    self.assertAllClose(got['label'], [[1], [0]])

  def test_fused_mode_protos_parse_the_same(self):
    """The variant of parsed protos (fused-layout mode output) is also a valid ragged-op input."""
    ex = Example()
    ex.named_feature.add(name='a').feature.fid_v1_list.value.extend([v1(1, 2), v1(1, 3)])
    serialized = [ex.SerializeToString(), Example().SerializeToString()]
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        variant = parse_examples(tf.constant(serialized), sparse_features=['a'])[KEY]
      from_variant = parse_examples(variant, sparse_features=['a'])['a']
      from_strings = parse_examples(tf.constant(serialized), sparse_features=['a'])['a']
      a, b = sess.run([from_variant, from_strings])
    self.assertEqual(a.to_list(), [[v2(1, 2), v2(1, 3)], []])
    self.assertEqual(a.to_list(), b.to_list())

  def test_bad_input(self):
    with self.assertRaisesRegex(tf.errors.FailedPreconditionError, 'Failed to parse the Example'):
      self.run_parse(parse_examples, [b'\xff\xff'], sparse_features=['a'])
    with self.assertRaisesRegex(ValueError, r"both as sparse and as dense/extra: \['a'\]"):
      parse_examples(tf.constant([b'']),
                     sparse_features=['a'],
                     dense_features=['a'],
                     dense_feature_shapes=[1])


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
