"""Property, gradient and bad-input tests of the fused layout ops (beyond the upstream port in
fused_embedding_to_layout_test.py): every version against a pure-numpy reference on random
FeatureConfigs and batches (empty and absent features, batch size 1, sequences shorter and longer
than max_sequence_length), a numerical gradient check, and InvalidArgument on bad inputs."""
import random
import zlib

import numpy as np
import tensorflow as tf

from idl.matrix.proto.example_pb2 import (Example, FeatureConfig, FeatureConfigs, OutConfig,
                                          OutType, PoolingType, SliceConfig, TensorShape)
from monolith.native_training import distribution_ops
from monolith.native_training.data.parsers import (ParserCtx, parse_examples,
                                                   sharding_sparse_fids)
from monolith.native_training.runtime.ops import gen_monolith_ops

tf.compat.v1.disable_v2_behavior()


def emb_value(name, fid, dims):
  """Deterministic embedding of `fid` in feature `name` (a fid's embedding depends on both)."""
  rng = np.random.RandomState((zlib.crc32(name.encode()) ^ fid) & 0x7fffffff)
  return rng.uniform(-1, 1, size=dims).astype(np.float32)


def random_feature_cfgs(rng: random.Random, uniform_table_dims: bool) -> FeatureConfigs:
  cfgs = FeatureConfigs()
  tables = ['t%d' % i for i in range(rng.randint(1, 3))]
  table_dims = {t: [rng.randint(1, 4) for _ in range(rng.randint(1, 3))] for t in tables}
  names = ['f%02d' % i for i in rng.sample(range(100), rng.randint(1, 6))]
  for name in names:
    table = rng.choice(tables)
    pooling = rng.choice([PoolingType.SUM, PoolingType.MEAN, PoolingType.FIRSTN])
    dims = table_dims[table] if uniform_table_dims else [
        rng.randint(1, 4) for _ in range(rng.randint(1, 3))
    ]
    cfgs.feature_configs[name].CopyFrom(
        FeatureConfig(table=table,
                      pooling_type=pooling,
                      slice_dims=dims,
                      max_sequence_length=rng.randint(1, 4) if pooling == PoolingType.FIRSTN else 0))

  def random_slice(name, width=None):
    total = sum(cfgs.feature_configs[name].slice_dims)
    if width is None:
      start = rng.randint(0, total - 1)
      end = rng.randint(start + 1, total)
    else:
      start = rng.randint(0, total - width)
      end = start + width
    return SliceConfig(feature_name=name, start=start, end=end)

  pooled = [n for n in names if cfgs.feature_configs[n].pooling_type != PoolingType.FIRSTN]
  # NONE: any feature, FIRSTN included.
  none = OutConfig(out_type=OutType.NONE)
  for name in rng.sample(names, rng.randint(1, len(names))):
    sc = random_slice(name)
    none.slice_configs.append(sc)
    cfg = cfgs.feature_configs[name]
    seq = [cfg.max_sequence_length] if cfg.pooling_type == PoolingType.FIRSTN else []
    none.shape.append(TensorShape(dims=[-1] + seq + [sc.end - sc.start]))
  cfgs.out_configs['none'].CopyFrom(none)
  if pooled:
    concat = OutConfig(out_type=OutType.CONCAT)
    for _ in range(rng.randint(1, 4)):
      concat.slice_configs.append(random_slice(rng.choice(pooled)))
    concat.shape.append(
        TensorShape(dims=[-1, sum(s.end - s.start for s in concat.slice_configs)]))
    cfgs.out_configs['concat'].CopyFrom(concat)
    width = min(sum(cfgs.feature_configs[n].slice_dims) for n in pooled)
    for key, out_type in (('stack', OutType.STACK), ('addn', OutType.ADDN)):
      oc = OutConfig(out_type=out_type)
      for _ in range(rng.randint(1, 3)):
        oc.slice_configs.append(random_slice(rng.choice(pooled), width))
      dims = [-1, len(oc.slice_configs), width] if out_type == OutType.STACK else [-1, width]
      oc.shape.append(TensorShape(dims=dims))
      cfgs.out_configs[key].CopyFrom(oc)
  return cfgs


def random_examples(rng: random.Random, cfgs: FeatureConfigs, batch_size: int):
  """Examples with absent and empty features, few distinct fids (so duplicates occur), and
  sequences shorter and longer than max_sequence_length."""
  examples, entries = [], {n: [] for n in cfgs.feature_configs}
  for _ in range(batch_size):
    ex = Example()
    for slot, name in enumerate(sorted(cfgs.feature_configs)):
      fids = []
      if rng.random() < 0.8:
        fids = [(slot + 1 << 48) + rng.randint(0, 12) for _ in range(rng.randint(0, 6))]
        ex.named_feature.add(name=name).feature.fid_v2_list.value.extend(fids)
      entries[name].append(fids)
    examples.append(ex)
  return examples, entries


def _layout_cells(cfgs: FeatureConfigs, layouts, batch_size):
  """Yields (slice config, feature config, row, cell) for every slice of every layout and every
  batch row; `layouts` are the layout arrays in the op's order (sorted layout names, each layout's
  shapes in order) and `cell` is the view of them that holds the slice's pooled value of the row
  (shared with the other slices for ADDN)."""
  it = iter(layouts)
  for ln in sorted(cfgs.out_configs):
    oc = cfgs.out_configs[ln]
    arrays = [next(it) for _ in oc.shape]
    col = 0
    for j, sc in enumerate(oc.slice_configs):
      w = sc.end - sc.start
      for r in range(batch_size):
        if oc.out_type == OutType.NONE:
          cell = arrays[j][r]
        elif oc.out_type == OutType.CONCAT:
          cell = arrays[0][r, col:col + w]
        elif oc.out_type == OutType.STACK:
          cell = arrays[0][r, j]
        else:
          cell = arrays[0][r]
        yield sc, cfgs.feature_configs[sc.feature_name], r, cell
      col += w


def reference_forward(cfgs: FeatureConfigs, entries, batch_size):
  outputs = [
      np.zeros([batch_size] + list(s.dims[1:]), np.float32)
      for ln in sorted(cfgs.out_configs)
      for s in cfgs.out_configs[ln].shape
  ]
  for sc, cfg, r, cell in _layout_cells(cfgs, outputs, batch_size):
    dims = sum(cfg.slice_dims)
    w = sc.end - sc.start
    vals = [emb_value(sc.feature_name, f, dims)[sc.start:sc.end] for f in entries[sc.feature_name][r]]
    if cfg.pooling_type == PoolingType.FIRSTN:
      pooled = np.zeros((cfg.max_sequence_length, w), np.float32)
      for k, v in enumerate(vals[:cfg.max_sequence_length]):
        pooled[k] = v
    else:
      pooled = np.sum(vals, axis=0) if vals else np.zeros(w, np.float32)
      if cfg.pooling_type == PoolingType.MEAN and vals:
        pooled = pooled / len(vals)
    cell += pooled
  return outputs


def reference_backward(cfgs: FeatureConfigs, entries, batch_size, upstream):
  """Gradient per (feature, fid), summed over occurrences."""
  grads = {}
  for sc, cfg, r, g in _layout_cells(cfgs, upstream, batch_size):
    dims = sum(cfg.slice_dims)
    fids = entries[sc.feature_name][r]
    for k, f in enumerate(fids):
      acc = grads.setdefault((sc.feature_name, f), np.zeros(dims, np.float32))
      if cfg.pooling_type == PoolingType.FIRSTN:
        if k < cfg.max_sequence_length:
          acc[sc.start:sc.end] += g[k]
      elif cfg.pooling_type == PoolingType.MEAN:
        acc[sc.start:sc.end] += g / len(fids)
      else:
        acc[sc.start:sc.end] += g
  return grads


class FusedLayoutPropertyTest(tf.test.TestCase):

  def _run_case(self, rng, version, batch_size, ps_num, unique, parallel_flag):
    cfgs = random_feature_cfgs(rng, uniform_table_dims=version == 1)
    examples, entries = random_examples(rng, cfgs, batch_size)
    names = sorted(cfgs.feature_configs)
    tables = sorted({c.table for c in cfgs.feature_configs.values()})
    table_features = {t: [n for n in names if cfgs.feature_configs[n].table == t] for t in tables}
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        variant = parse_examples(tf.constant([e.SerializeToString() for e in examples]),
                                 sparse_features=[])[ParserCtx.sharding_sparse_fids_sparse_features_key]
      shard_version = 2 if version == 1 else version
      (fid_list, fid_offset, feature_offset, nfl_offset, batch_t, nfl_size, feature_size, fid_size,
       emb_size, row_splits, _, emb_row_lenth, table_rows, _) = sharding_sparse_fids(
           variant, ps_num, cfgs, unique, 'example', parallel_flag=parallel_flag,
           fid_list_ret_list=True, version=shard_version)
      if version == 4:
        fids_np, splits_np, table_rows_np = sess.run([fid_list, row_splits, table_rows])
        # Cut the shard-major flat outputs back into per-(table, shard) lists.
        lists, splits, pos, spos = {}, {}, 0, 0
        for ps in range(ps_num):
          for ti, t in enumerate(tables):
            n = table_rows_np[ps * len(tables) + ti]
            lists[(ti, ps)] = fids_np[pos:pos + n]
            splits[(ti, ps)] = splits_np[spos:spos + len(table_features[t]) + 1]
            pos += n
            spos += len(table_features[t]) + 1
      else:
        fids_np, splits_np = sess.run([fid_list, row_splits])
        lists = {(ti, ps): fids_np[ti * ps_num + ps] for ti in range(len(tables)) for ps in range(ps_num)}
        splits = {(ti, ps): splits_np[ti * ps_num + ps] for ti in range(len(tables)) for ps in range(ps_num)}
      # Embedding block of each (table, shard): its features' fid sub-lists, stacked.
      blocks, owners = {}, {}
      for (ti, ps), fids in lists.items():
        rows, who = [], []
        for k, name in enumerate(table_features[tables[ti]]):
          dims = sum(cfgs.feature_configs[name].slice_dims)
          for f in fids[splits[(ti, ps)][k]:splits[(ti, ps)][k + 1]]:
            rows.append(emb_value(name, int(f), dims))
            who.append((name, int(f), dims))
        blocks[(ti, ps)] = rows
        owners[(ti, ps)] = who
      order = [(ti, ps) for ti in range(len(tables)) for ps in range(ps_num)]
      if version == 1:
        width = {ti: sum(cfgs.feature_configs[table_features[t][0]].slice_dims) for ti, t in enumerate(tables)}
        embs = [np.array(blocks[k], np.float32).reshape(-1, width[k[0]]) for k in order]
        # Sharding v1 offsets: rows of the (table, shard) list.
        (_, fid_offset, feature_offset, nfl_offset, batch_t, *_rest) = sharding_sparse_fids(
            variant, ps_num, cfgs, unique, 'example', fid_list_ret_list=True, version=1)
      elif version == 4:
        embs = [np.concatenate([np.concatenate(blocks[(ti, ps)] or [np.zeros(0, np.float32)])
                                for ps in range(ps_num) for ti in range(len(tables))])]
      else:
        embs = [np.concatenate(blocks[k] or [np.zeros(0, np.float32)]) for k in order]
      emb_t = [tf.constant(e) for e in embs]
      layouts = distribution_ops.fused_embedding_to_layout(
          emb_t, row_splits if version == 2 else None, fid_offset, feature_offset, nfl_offset,
          batch_t, 'example', cfgs, ps_num,
          fid_list_emb_row_lenth=emb_row_lenth if version == 4 else None,
          nfl_size=nfl_size, feature_size=feature_size, fid_size=fid_size, emb_size=emb_size,
          parallel_flag=parallel_flag, version=version)
      shapes = [s for ln in sorted(cfgs.out_configs) for s in cfgs.out_configs[ln].shape]
      upstream = [
          np.random.RandomState(i).uniform(-1, 1, size=[batch_size] + list(s.dims[1:])).astype(
              np.float32) for i, s in enumerate(shapes)
      ]
      grads_t = tf.gradients(layouts, emb_t, grad_ys=[tf.constant(u) for u in upstream])
      actual, grads = sess.run([layouts, grads_t])
    expected = reference_forward(cfgs, entries, batch_size)
    self.assertEqual(len(expected), len(actual))
    for exp, act in zip(expected, actual):
      self.assertAllClose(exp, act, rtol=1e-4, atol=1e-5)
    # Regroup the op's gradient rows by (feature, fid) and compare with the reference.
    if version == 4:
      flat = grads[0]
      pieces, pos = {}, 0
      for ps in range(ps_num):
        for ti in range(len(tables)):
          n = sum(d for _, _, d in owners[(ti, ps)])
          pieces[(ti, ps)] = flat[pos:pos + n]
          pos += n
    else:
      pieces = {k: g.reshape(-1) for k, g in zip(order, grads)}
    actual_grads = {}
    for key, who in owners.items():
      pos = 0
      for name, f, dims in who:
        acc = actual_grads.setdefault((name, f), np.zeros(dims, np.float32))
        acc += pieces[key][pos:pos + dims]
        pos += dims
    expected_grads = reference_backward(cfgs, entries, batch_size, upstream)
    # Fids of features no layout uses get zero gradients.
    self.assertTrue(set(expected_grads) <= set(actual_grads))
    for key, g in actual_grads.items():
      self.assertAllClose(expected_grads.get(key, np.zeros_like(g)), g, rtol=1e-4, atol=1e-4,
                          msg=str(key))

  def test_random_configs_every_version(self):
    rng = random.Random(7)
    for case in range(40):
      version = [1, 2, 3, 4, 5][case % 5]
      batch_size = 1 if case % 7 == 0 else rng.randint(2, 6)
      self._run_case(rng, version, batch_size, ps_num=rng.randint(1, 3),
                     unique=bool(case % 2), parallel_flag=case % 3 % 2)

  def test_numerical_gradient(self):
    cfgs = FeatureConfigs()
    cfgs.feature_configs['a'].CopyFrom(
        FeatureConfig(table='t', pooling_type=PoolingType.MEAN, slice_dims=[2, 1]))
    cfgs.feature_configs['b'].CopyFrom(
        FeatureConfig(table='t', pooling_type=PoolingType.FIRSTN, slice_dims=[2],
                      max_sequence_length=2))
    cfgs.out_configs['x'].CopyFrom(
        OutConfig(out_type=OutType.CONCAT,
                  slice_configs=[SliceConfig(feature_name='a', start=0, end=3)],
                  shape=[TensorShape(dims=[-1, 3])]))
    cfgs.out_configs['y'].CopyFrom(
        OutConfig(out_type=OutType.NONE,
                  slice_configs=[SliceConfig(feature_name='b', start=0, end=2)],
                  shape=[TensorShape(dims=[-1, 2, 2])]))
    # Block of 4 fids: a's two (3 wide) then b's two (2 wide). Rows: a {0,1}, {1}; b {0,1,0}, {}.
    fid_offset = [0, 3, 3, 6, 8, 6]
    with tf.Graph().as_default(), self.session():
      emb = tf.constant(np.random.RandomState(3).uniform(size=10).astype(np.float32))
      layouts = distribution_ops.fused_embedding_to_layout(
          [emb], None, tf.constant(fid_offset, tf.uint64), tf.constant([0, 2, 3, 6, 6], tf.int32),
          tf.constant([0, 2, 4], tf.uint32), tf.constant([2], tf.int32), 'example', cfgs, 1,
          version=3)
      loss = tf.reduce_sum(layouts[0] * [[1., 2., 3.]]) + tf.reduce_sum(layouts[1] * 0.5)
      theoretical, numerical = tf.compat.v1.test.compute_gradient(emb, [10], loss, [])
    self.assertAllClose(theoretical, numerical, rtol=1e-2, atol=1e-2)

  def test_public_grad_op(self):
    """fused_embedding_to_layout_grad called directly, with a gradient scale, against the
    registered gradient: two rows of one SUM feature, each row one distinct fid."""
    cfgs = FeatureConfigs()
    cfgs.feature_configs['a'].CopyFrom(
        FeatureConfig(table='t', pooling_type=PoolingType.SUM, slice_dims=[4]))
    cfgs.out_configs['x'].CopyFrom(
        OutConfig(out_type=OutType.CONCAT,
                  slice_configs=[SliceConfig(feature_name='a', start=0, end=4)],
                  shape=[TensorShape(dims=[-1, 4])]))
    with tf.Graph().as_default(), self.session() as sess:
      emb = tf.constant(np.arange(8, dtype=np.float32))
      fid_offset = tf.constant([0, 4], tf.uint64)
      feature_offset = tf.constant([0, 1, 2], tf.int32)
      nfl_offset = tf.constant([0, 2], tf.uint32)
      batch_size = tf.constant([2], tf.int32)
      layouts = distribution_ops.fused_embedding_to_layout([emb], None, fid_offset,
                                                           feature_offset, nfl_offset, batch_size,
                                                           'example', cfgs, 1, version=3)
      upstream = tf.constant(np.arange(1, 9, dtype=np.float32).reshape(2, 4))
      registered = tf.gradients(layouts, [emb], grad_ys=[upstream])
      public = distribution_ops.fused_embedding_to_layout_grad(nfl_offset,
                                                               feature_offset,
                                                               fid_offset,
                                                               batch_size, [emb],
                                                               None, [upstream],
                                                               'example',
                                                               cfgs,
                                                               1,
                                                               layout_tensors_grad_scale=0.5,
                                                               version=3)
      registered_np, public_np = sess.run([registered, public])
    self.assertAllClose(registered_np[0], np.arange(1, 9))
    self.assertAllClose(public_np[0], np.arange(1, 9) * 0.5)


class FusedLayoutBadInputTest(tf.test.TestCase):

  def _cfgs(self, slice_feature='a', table='t'):
    cfgs = FeatureConfigs()
    cfgs.feature_configs['a'].CopyFrom(
        FeatureConfig(table=table, pooling_type=PoolingType.SUM, slice_dims=[4]))
    cfgs.out_configs['x'].CopyFrom(
        OutConfig(out_type=OutType.CONCAT,
                  slice_configs=[SliceConfig(feature_name=slice_feature, start=0, end=4)],
                  shape=[TensorShape(dims=[-1, 4])]))
    return cfgs

  def _run(self, cfgs, embs, fid_offset, feature_offset=(0, 1, 2), nfl=(0, 2), version=3,
           ps_num=1, **kwargs):
    with tf.Graph().as_default(), self.session() as sess:
      row_split = kwargs.pop('row_split', None)
      if row_split is not None:
        row_split = [tf.constant(s, tf.int64) for s in row_split]
      if 'fid_list_emb_row_lenth' in kwargs:
        kwargs['fid_list_emb_row_lenth'] = tf.constant(kwargs['fid_list_emb_row_lenth'], tf.int32)
      out = distribution_ops.fused_embedding_to_layout(
          [tf.constant(e) for e in embs], row_split,
          tf.constant(fid_offset, tf.uint64), tf.constant(feature_offset, tf.int32),
          tf.constant(nfl, tf.uint32), tf.constant([2], tf.int32), 'example', cfgs, ps_num,
          version=version, **kwargs)
      return sess.run(out)

  def test_valid_baseline(self):
    out = self._run(self._cfgs(), [np.arange(8, dtype=np.float32)], [0, 4])
    self.assertAllEqual(out[0], [[0, 1, 2, 3], [4, 5, 6, 7]])

  def test_offset_out_of_range(self):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'feature a.*out of range'):
      self._run(self._cfgs(), [np.zeros(8, np.float32)], [0, 6])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'feature a.*embedding blocks'):
      self._run(self._cfgs(), [np.zeros(8, np.float32)], [0, 5 << 32])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'feature a.*feature_offset'):
      self._run(self._cfgs(), [np.zeros(8, np.float32)], [0, 4], feature_offset=(0, 9, 2))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'feature a.*feature_offset'):
      self._run(self._cfgs(), [np.zeros(8, np.float32)], [0, 4], nfl=(2, 3))

  def test_wrong_embedding_dim(self):
    # v1 with 3 columns where feature a needs 4.
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'feature a.*wrong embedding dim'):
      self._run(self._cfgs(), [np.zeros((2, 3), np.float32)], [0, 1], version=1)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, '2-D embeddings'):
      self._run(self._cfgs(), [np.zeros(8, np.float32)], [0, 1], version=1)

  def test_unknown_feature_or_table(self):
    # Caught by the shape function already (ValueError while building the graph).
    with self.assertRaisesRegex((ValueError, tf.errors.InvalidArgumentError),
                                'layout x: slice names unknown feature nope'):
      self._run(self._cfgs(slice_feature='nope'), [np.zeros(8, np.float32)], [0, 4])
    # A table the embeddings do not cover: v2 and v4 need ps_num * num_tables pieces.
    cfgs = self._cfgs()
    cfgs.feature_configs['b'].CopyFrom(FeatureConfig(table='other', slice_dims=[4]))
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'ps_num \\* num_tables'):
      self._run(cfgs, [np.zeros(8, np.float32)], [0, 4], nfl=(0, 2, 2), version=2,
                row_split=[[0, 2]])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, 'ps_num \\* num_tables'):
      self._run(cfgs, [np.zeros(8, np.float32)], [0, 4], nfl=(0, 2, 2), version=4,
                fid_list_emb_row_lenth=[8])

  def test_bad_feature_cfgs_and_sharding_attrs(self):
    with tf.Graph().as_default(), self.session() as sess, self.assertRaisesRegex(
        (ValueError, tf.errors.FailedPreconditionError), 'Failed to parse the feature_cfgs_'):
      out = gen_monolith_ops.monolith_embedding_to_layout_v3(
          embeddings_list=[tf.zeros([4])], fid_offset=tf.constant([0], tf.uint64),
          feature_offset=tf.constant([0], tf.int32), nfl_offset=tf.constant([0], tf.uint32),
          batch_size=tf.constant(1), num_out=0, variant_type='example', feature_cfgs=b'\xff\xff',
          ps_num=1)
      sess.run(out)
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        variant = parse_examples(tf.constant([Example().SerializeToString()]),
                                 sparse_features=[])[ParserCtx.sharding_sparse_fids_sparse_features_key]
      out = gen_monolith_ops.sharding_sparse_fids_v3(
          pb_input=variant, ps_num=1, feature_cfgs=self._cfgs().SerializeToString(), unique=True,
          input_type='csv', parallel_flag=0, N=1)
      with self.assertRaisesRegex(tf.errors.FailedPreconditionError, 'input_type only support'):
        sess.run(out)

  def test_malformed_example(self):
    with tf.Graph().as_default(), self.session() as sess:
      with ParserCtx(enable_fused_layout=True):
        features = parse_examples(tf.constant([b'\x0a\xff']), sparse_features=[])
      with self.assertRaisesRegex(tf.errors.FailedPreconditionError,
                                  'Failed to parse the Example'):
        sess.run(tf.shape(features[ParserCtx.sharding_sparse_fids_sparse_features_key]))


if __name__ == '__main__':
  tf.test.main()
