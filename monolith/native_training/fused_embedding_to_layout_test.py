"""Port of upstream's fused_embedding_to_layout_test.py (fused_layout.md §10).

Differences from upstream, all for determinism or robustness of the test data (the op semantics
checked are the same): Python's `random` is seeded; the forward test's fids get a random low part
so that they spread over all ps shards (upstream's values are all multiples of 100, hence all land
in shard 0 of 5); embeddings are built for every (table, shard), empty ones included, so the list
positions never depend on which shards happen to receive fids; fid lists are drawn until they hold
the required number of distinct values.
"""
import random
from random import randint

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import test_util

from idl.matrix.proto.example_pb2 import (Example, ExampleBatch, FeatureConfig, FeatureConfigs,
                                          FeatureListType, OutConfig, OutType, PoolingType,
                                          SliceConfig, TensorShape)
from monolith.native_training import distribution_ops
from monolith.native_training.data.parsers import (ParserCtx, get_default_parser_ctx,
                                                   parse_example_batch, parse_examples,
                                                   sharding_sparse_fids)

tf.compat.v1.disable_v2_behavior()
np.random.seed(2)
random.seed(2)

SHARD_BIT = 0x80000000


def infer_shape(out_conf: OutConfig, out_type: OutType, max_sequence_length: int = 0):
  out_conf.out_type = out_type
  dims = [sc.end - sc.start for sc in out_conf.slice_configs]
  seq = [max_sequence_length] if max_sequence_length > 0 else []
  if out_type == OutType.NONE:
    for d in dims:
      out_conf.shape.append(TensorShape(dims=[-1] + seq + [d]))
  elif out_type == OutType.CONCAT:
    out_conf.shape.append(TensorShape(dims=[-1] + seq + [sum(dims)]))
  elif out_type == OutType.STACK:
    assert len(set(dims)) == 1
    out_conf.shape.append(TensorShape(dims=[-1, len(dims)] + seq + [dims[0]]))
  elif out_type == OutType.ADDN:
    assert len(set(dims)) == 1
    out_conf.shape.append(TensorShape(dims=[-1] + seq + [dims[0]]))
  else:
    raise ValueError('out_type error')


def get_key(ln: str, sc: SliceConfig) -> str:
  return f'{ln}_{sc.feature_name}_{sc.start}_{sc.end}'


def pooling(pooling_type, in_data, max_length):
  if max_length and len(in_data) > max_length:
    in_data = in_data[:max_length]
  if pooling_type == PoolingType.SUM:
    return np.sum(in_data, axis=0)
  if pooling_type == PoolingType.MEAN:
    return np.sum(in_data, axis=0) / len(in_data)
  out = np.zeros((max_length, len(in_data[0])), dtype=np.float32)
  for i, item in enumerate(in_data):
    out[i] = item
  return out


def expected_layouts(feature_cfgs: FeatureConfigs, entry_fids, fid_to_emb, batch_size):
  """Numpy reference of the layout op: `entry_fids[name]` is a list of per-row fid lists (one list
  for a shared feature, applied to every row), `fid_to_emb[fid]` the fid's full embedding."""
  outputs = []
  for ln in sorted(feature_cfgs.out_configs):
    out_conf = feature_cfgs.out_configs[ln]
    arrays = [np.zeros([batch_size] + list(s.dims[1:]), dtype=np.float32) for s in out_conf.shape]
    col = 0
    for j, sc in enumerate(out_conf.slice_configs):
      cfg = feature_cfgs.feature_configs[sc.feature_name]
      d = sc.end - sc.start
      seq_len = cfg.max_sequence_length if cfg.pooling_type == PoolingType.FIRSTN else 0
      rows = entry_fids.get(sc.feature_name, [])
      for r in range(batch_size):
        fids = rows[0] if len(rows) == 1 and batch_size > 1 else (rows[r] if rows else [])
        if not fids:
          continue
        value = pooling(cfg.pooling_type, [fid_to_emb[f][sc.start:sc.end] for f in fids], seq_len)
        if out_conf.out_type == OutType.NONE:
          arrays[j][r] = value
        elif out_conf.out_type == OutType.CONCAT:
          arrays[0][r, ..., col:col + d] = value
        elif out_conf.out_type == OutType.STACK:
          arrays[0][r, j] = value
        else:
          arrays[0][r] += value
      col += d
    outputs.extend(arrays)
  return outputs


def get_pre_output_offset(shard, f_cfg):
  return (f_cfg['pre_output_index'] + shard * f_cfg['table_feature_count'] +
          f_cfg['feature_in_table_index'])


def get_feature_cfg(raw_feature_cfgs: FeatureConfigs, ps_num: int):
  feature_name_sort = sorted(raw_feature_cfgs.feature_configs)
  table_name_sort = sorted({cfg.table for cfg in raw_feature_cfgs.feature_configs.values()})
  table_cfg = {}
  for ti, table in enumerate(table_name_sort):
    names = [n for n in feature_name_sort if raw_feature_cfgs.feature_configs[n].table == table]
    table_cfg[table] = dict(table_name=table,
                            feature_list=names,
                            table_index=ti,
                            feature_count=len(names))
  feature_cfg = {}
  pre = {}
  acc = 0
  for table in table_name_sort:
    pre[table] = acc
    acc += max(table_cfg[table]['feature_count'], 1) * ps_num
  for fi, name in enumerate(feature_name_sort):
    cfg = raw_feature_cfgs.feature_configs[name]
    tc = table_cfg[cfg.table]
    feature_cfg[name] = dict(feature_name=name,
                             feature_index=fi,
                             table_name=cfg.table,
                             table_index=tc['table_index'],
                             feature_in_table_index=tc['feature_list'].index(name),
                             table_feature_count=tc['feature_count'],
                             pre_output_index=pre[cfg.table],
                             dim_sum=sum(cfg.slice_dims))
  return feature_cfg, table_cfg, feature_name_sort, table_name_sort


def _distinct_fids(count, make):
  fids = set()
  while len(fids) < count:
    fids.add(make())
  return list(fids)


def _device(use_gpu):
  return test_util.use_gpu() if use_gpu else tf.device('CPU:0')


def _split_v4_grad(grad, emb_row_lenth, num_tables, ps_num):
  """v4 gradient (shard-major pieces) → per (table, shard) list in table-major order (§5.8)."""
  pieces = np.split(grad, np.cumsum(emb_row_lenth)[:-1])
  return [pieces[ps * num_tables + ti] for ti in range(num_tables) for ps in range(ps_num)]


def _build_layout_op(serialized, variant_type, unique, feature_cfgs, num_ps, num_tables,
                     embeddings, fid_offset_list, feature_offset_list, nfl_offset_list,
                     fid_row_split_list, batch_size, shard_op_version, op_version, parallel_flag,
                     use_gpu):
  """Builds the layout op of `op_version` over per-(table, shard) `embeddings`.

  With `shard_op_version` the offsets come from parsing `serialized` and running the sharding op
  (the production path, `unique` as the caller's hand-computed layout assumes); without it from the
  hand-computed lists, which only v1/v2 accept.
  Returns (embedding inputs, layout tensors, v4 row lengths or None).
  """
  fid_list_emb_row_lenth = None
  nfl_size = feature_size = fid_size = emb_size = None
  if shard_op_version:
    assert op_version == shard_op_version
    get_default_parser_ctx().enable_fused_layout = True
    parse = parse_example_batch if variant_type == 'example_batch' else parse_examples
    features = parse(tf.constant(serialized),
                     sparse_features=[],
                     dense_features=[],
                     dense_feature_shapes=[],
                     dense_feature_types=[],
                     extra_features=[],
                     extra_feature_shapes=[])
    variant = features.pop(ParserCtx.sharding_sparse_fids_sparse_features_key)
    (_, fid_offset, feature_offset, nfl_offset, batch_size_t, nfl_size, feature_size, fid_size,
     emb_size, row_splits, _, fid_list_emb_row_lenth, _,
     _) = sharding_sparse_fids(variant,
                               num_ps,
                               feature_cfgs,
                               unique,
                               variant_type,
                               parallel_flag=0,
                               fid_list_ret_list=True,
                               version=shard_op_version)
    fid_list_row_split = row_splits if shard_op_version == 2 else None
  else:
    if op_version >= 3:
      raise TypeError('Not imple')
    fid_offset = tf.constant(fid_offset_list, dtype=tf.uint64)
    feature_offset = tf.constant(feature_offset_list, dtype=tf.int32)
    nfl_offset = tf.constant(nfl_offset_list, dtype=tf.uint32)
    fid_list_row_split = [tf.constant(s, dtype=tf.int64) for s in fid_row_split_list]
    batch_size_t = tf.constant([batch_size], dtype=tf.int32)
  if use_gpu:
    assert op_version >= 3
  if op_version == 4:
    # v4 takes one tensor, shard-major: all tables of shard 0, then of shard 1, ...
    emb_inputs = [
        tf.constant(
            np.concatenate(
                [embeddings[ti * num_ps + ps] for ps in range(num_ps) for ti in range(num_tables)]))
    ]
  else:
    emb_inputs = [tf.constant(e) for e in embeddings]
  with _device(use_gpu):
    layouts = distribution_ops.fused_embedding_to_layout(
        emb_inputs,
        fid_list_row_split,
        fid_offset,
        feature_offset,
        nfl_offset,
        batch_size_t,
        variant_type,
        feature_cfgs,
        num_ps,
        fid_list_emb_row_lenth=fid_list_emb_row_lenth,
        nfl_size=nfl_size,
        feature_size=feature_size,
        fid_size=fid_size,
        emb_size=emb_size,
        parallel_flag=parallel_flag,
        version=op_version)
  return emb_inputs, layouts, fid_list_emb_row_lenth


class FusedEmbeddingToLayoutTest(tf.test.TestCase):

  def _build_feature_cfgs(self, slots, split, names, firstn_slice_start):
    feature_cfgs = FeatureConfigs()
    out = {k: OutConfig() for k in ('bias', 'vec', 'ffm1', 'ffm2', 'firstN')}
    for slot in slots:
      name = names[slot]
      if slot < split[0]:
        cfg = FeatureConfig(table='table_one', pooling_type=PoolingType.SUM, slice_dims=[1, 4, 8])
        out['ffm1'].slice_configs.append(SliceConfig(feature_name=name, start=5, end=13))
      elif slot < split[1]:
        cfg = FeatureConfig(table='table_two', pooling_type=PoolingType.MEAN, slice_dims=[1, 4, 16])
        out['ffm2'].slice_configs.append(SliceConfig(feature_name=name, start=5, end=21))
      else:
        # FIRSTN features share table_one with the SUM ones on purpose: mixed dims in one table.
        cfg = FeatureConfig(table='table_one',
                            pooling_type=PoolingType.FIRSTN,
                            slice_dims=[1, 4, 16],
                            max_sequence_length=3)
        out['firstN'].slice_configs.append(
            SliceConfig(feature_name=name, start=firstn_slice_start, end=21))
      feature_cfgs.feature_configs[name].CopyFrom(cfg)
      if cfg.pooling_type != PoolingType.FIRSTN:
        out['bias'].slice_configs.append(SliceConfig(feature_name=name, start=0, end=1))
        out['vec'].slice_configs.append(SliceConfig(feature_name=name, start=1, end=5))
    infer_shape(out['bias'], OutType.ADDN)
    infer_shape(out['vec'], OutType.CONCAT)
    infer_shape(out['ffm1'], OutType.STACK)
    infer_shape(out['ffm2'], OutType.NONE)
    infer_shape(out['firstN'], OutType.NONE, 3)
    for k, v in out.items():
      feature_cfgs.out_configs[k].CopyFrom(v)
    return feature_cfgs

  def test_fused_embedding_to_layout(self,
                                     shard_op_version=None,
                                     op_version=2,
                                     parallel_flag=1,
                                     use_gpu=False):
    batch_size, num_ps = 256, 5
    slots = list(range(1, 200))
    names = {slot: f'fc_slot_{slot}' for slot in slots}
    feature_cfgs = self._build_feature_cfgs(slots, [50, 100], names, firstn_slice_start=1)
    feature_cfg, table_cfg, feature_name_sort, table_name_sort = get_feature_cfg(
        feature_cfgs, num_ps)
    num_tables = len(table_name_sort)

    example_batch = ExampleBatch(batch_size=batch_size)
    fid_offset_list, feature_offset_list, nfl_offset_list = [], [0], [0]
    fids_dict = {t: {ps: [] for ps in range(num_ps)} for t in table_name_sort}
    fid_row_split_list = [[0] for _ in range(num_ps * num_tables)]
    entry_fids = {}
    for name in feature_name_sort:
      slot = int(name[len('fc_slot_'):])
      f_cfg = feature_cfg[name]
      shared = slot % 2 == 0
      nfl = example_batch.named_feature_list.add(
          id=slot,
          name=name,
          type=FeatureListType.SHARED if shared else FeatureListType.INDIVIDUAL)
      index2 = [0] * (num_ps * num_tables)
      entry_fids[name] = []
      for _ in range(1 if shared else batch_size):
        feature = nfl.feature.add()
        fids = list({
            slot * 10000 + (i + 1) * 1000 + 100 * randint(1, 9) + randint(0, 99)
            for i in range(randint(1, 6))
        })
        feature.fid_v2_list.value.extend(fids)
        entry_fids[name].append(fids)
        for fid in fids:
          shard = fid % num_ps
          k = f_cfg['table_index'] * num_ps + shard
          fid_offset_list.append(get_pre_output_offset(shard, f_cfg) << 32 | index2[k])
          index2[k] += 1
          fids_dict[f_cfg['table_name']][shard].append((f_cfg['dim_sum'], fid))
        feature_offset_list.append(len(fid_offset_list))
      for shard in range(num_ps):
        fid_row_split_list[f_cfg['table_index'] * num_ps + shard].append(
            len(fids_dict[f_cfg['table_name']][shard]))
      if shared:
        nfl_offset_list[-1] |= SHARD_BIT
      nfl_offset_list.append(len(feature_offset_list) - 1)

    fid_to_emb = {}
    embeddings = []
    for table in table_name_sort:
      for shard in range(num_ps):
        flat = []
        for dim_sum, fid in fids_dict[table][shard]:
          emb = [float(fid + j) for j in range(dim_sum)]
          fid_to_emb[fid] = np.array(emb, dtype=np.float32)
          flat.extend(emb)
        embeddings.append(np.array(flat, dtype=np.float32))
    expected = expected_layouts(feature_cfgs, entry_fids, fid_to_emb, batch_size)

    with tf.Graph().as_default():
      serialized = [example_batch.SerializeToString()]
      _, layouts, _ = _build_layout_op(serialized, 'example_batch', False, feature_cfgs,
                                       num_ps, num_tables, embeddings, fid_offset_list,
                                       feature_offset_list, nfl_offset_list, fid_row_split_list,
                                       batch_size, shard_op_version, op_version, parallel_flag,
                                       use_gpu)
      with self.session() as sess:
        actual = sess.run(layouts)
    self.assertEqual(len(expected), len(actual))
    self.assertEqual(len(actual), 153)
    for exp, act in zip(expected, actual):
      self.assertEqual(exp.shape, act.shape)
      self.assertTrue(np.allclose(exp, act, rtol=1e-4, atol=1e-7))

  def test_fused_embedding_to_layout_use_shard_op(self):
    self.test_fused_embedding_to_layout(shard_op_version=2, op_version=2)

  def test_fused_embedding_to_layout_use_shard_op3(self):
    self.test_fused_embedding_to_layout(shard_op_version=3, op_version=3)

  def test_fused_embedding_to_layout_use_shard_op3_gpu(self):
    self.test_fused_embedding_to_layout(shard_op_version=3, op_version=3, use_gpu=True)

  def test_fused_embedding_to_layout_use_shard_op4(self):
    self.test_fused_embedding_to_layout(shard_op_version=4, op_version=4)

  def test_fused_embedding_to_layout_use_shard_op4_gpu(self):
    self.test_fused_embedding_to_layout(shard_op_version=4, op_version=4, use_gpu=True)

  def test_fused_embedding_to_layout_parallel(self):
    self.test_fused_embedding_to_layout(parallel_flag=0)

  def test_fused_embedding_to_layout_not_implemented_without_shard_op(self):
    with self.assertRaisesRegex(TypeError, 'Not imple'):
      self.test_fused_embedding_to_layout(op_version=3)

  def test_fused_embedding_to_layout_grad(self,
                                          shard_op_version=None,
                                          op_version=2,
                                          parallel_flag=1,
                                          use_gpu=False):
    batch_size, num_ps = 256, 3
    slots = list(range(1, 30))
    letters = [chr(ord('a') + i) for i in range(26)] + ['za', 'zb', 'zc']
    names = {slot: f'fc_slot_{letters[slot - 1]}' for slot in slots}
    feature_cfgs = self._build_feature_cfgs(slots, [10, 20], names, firstn_slice_start=0)
    feature_cfg, table_cfg, feature_name_sort, table_name_sort = get_feature_cfg(
        feature_cfgs, num_ps)
    num_tables = len(table_name_sort)
    self.assertEqual(feature_name_sort, [names[s] for s in slots])

    embedding_fid_list = [[] for _ in range(num_tables * num_ps)]
    fid_row_split_list = [[0] for _ in range(num_tables * num_ps)]
    truth = {}
    fid_info = {}
    slot_fids = {}
    for slot in slots:
      name = names[slot]
      f_cfg = feature_cfg[name]
      fids = _distinct_fids(randint(257, 266), lambda: (slot << 48) + randint(100, 1000000))
      slot_fids[slot] = fids
      per_shard = [0] * num_ps
      for fid in fids:
        shard = fid % num_ps
        index1 = f_cfg['table_index'] * num_ps + shard
        index2 = len(embedding_fid_list[index1])
        embedding_fid_list[index1].append((fid, f_cfg['dim_sum']))
        fid_info[fid] = [index1, index2, get_pre_output_offset(shard, f_cfg), per_shard[shard]]
        per_shard[shard] += 1
        truth.setdefault(index1, {})[index2] = [0.0, f_cfg['dim_sum']]
      for shard in range(num_ps):
        k = f_cfg['table_index'] * num_ps + shard
        fid_row_split_list[k].append(len(embedding_fid_list[k]))

    examples = [Example() for _ in range(batch_size)]
    fid_offset_list, feature_offset_list, nfl_offset_list = [], [0], [0]
    for slot in slots:
      name = names[slot]
      cfg = feature_cfgs.feature_configs[name]
      fids = slot_fids[slot]
      for bi in range(batch_size):
        window = fids[bi:len(fids) - batch_size + 1 + bi]
        examples[bi].named_feature.add(name=name).feature.fid_v2_list.value.extend(window)
        for i, fid in enumerate(window):
          index1, index2, full_index, feature_index = fid_info[fid]
          fid_offset_list.append(full_index << 32 | feature_index)
          if cfg.pooling_type == PoolingType.FIRSTN and i >= 3:
            continue
          truth[index1][index2][0] += (1.0 / len(window)
                                       if cfg.pooling_type == PoolingType.MEAN else 1.0)
        feature_offset_list.append(len(fid_offset_list))
      nfl_offset_list.append(len(feature_offset_list) - 1)

    embeddings = [
        np.random.uniform(size=(sum(d for _, d in embedding_fid_list[i]), 1)).astype(
            np.float32).reshape([-1]) for i in range(num_tables * num_ps)
    ]

    with tf.Graph().as_default():
      serialized = [e.SerializeToString() for e in examples]
      emb_inputs, layouts, fid_list_emb_row_lenth = _build_layout_op(
          serialized, 'example', True, feature_cfgs, num_ps, num_tables, embeddings,
          fid_offset_list, feature_offset_list, nfl_offset_list, fid_row_split_list, batch_size,
          shard_op_version, op_version, parallel_flag, use_gpu)
      with _device(use_gpu):
        test_grads = tf.gradients(layouts, emb_inputs)
      with self.session() as sess:
        if op_version == 4:
          grad, lens = sess.run([test_grads[0], fid_list_emb_row_lenth])
          grads = _split_v4_grad(grad, lens, num_tables, num_ps)
        else:
          grads = sess.run(test_grads)
    self.assertEqual(len(grads), len(truth))
    for index1 in range(len(grads)):
      offset = 0
      for index2 in range(len(truth[index1])):
        count, dim = truth[index1][index2]
        row = grads[index1][offset:offset + dim]
        self.assertTrue(np.all(row == row[0]), (index1, index2, row))
        self.assertTrue(np.allclose(row[0], count, rtol=1e-4, atol=1e-7),
                        (index1, index2, row[0], count))
        offset += dim
      self.assertEqual(offset, len(grads[index1]))

  def test_fused_embedding_to_layout_grad_no_parallel(self):
    self.test_fused_embedding_to_layout_grad(parallel_flag=0)

  def test_fused_embedding_to_layout_grad_use_shard_op(self):
    self.test_fused_embedding_to_layout_grad(shard_op_version=2, op_version=2)

  def test_fused_embedding_to_layout_grad_use_shard_op3(self):
    self.test_fused_embedding_to_layout_grad(shard_op_version=3, op_version=3)

  def test_fused_embedding_to_layout_grad_use_shard_op3_gpu(self):
    self.test_fused_embedding_to_layout_grad(shard_op_version=3, op_version=3, use_gpu=True)

  def test_fused_embedding_to_layout_grad_use_shard_op4(self):
    self.test_fused_embedding_to_layout_grad(shard_op_version=4, op_version=4)

  def test_fused_embedding_to_layout_grad_use_shard_op4_gpu(self):
    self.test_fused_embedding_to_layout_grad(shard_op_version=4, op_version=4, use_gpu=True)


class FusedEmbeddingToLayoutFitPreTest(tf.test.TestCase):

  def _cfgs(self, names, slots, split):
    feature_cfgs = FeatureConfigs()
    out = {k: OutConfig() for k in ('bias', 'vec', 'ffm1', 'ffm2')}
    for name in sorted(names[s] for s in slots):
      slot = [s for s in slots if names[s] == name][0]
      if slot < split:
        cfg = FeatureConfig(table='table_one', pooling_type=PoolingType.SUM, slice_dims=[1, 4, 8])
        out['ffm1'].slice_configs.append(SliceConfig(feature_name=name, start=5, end=13))
      else:
        cfg = FeatureConfig(table='table_two', pooling_type=PoolingType.MEAN, slice_dims=[1, 4, 16])
        out['ffm2'].slice_configs.append(SliceConfig(feature_name=name, start=5, end=21))
      feature_cfgs.feature_configs[name].CopyFrom(cfg)
      out['bias'].slice_configs.append(SliceConfig(feature_name=name, start=0, end=1))
      out['vec'].slice_configs.append(SliceConfig(feature_name=name, start=1, end=5))
    infer_shape(out['bias'], OutType.ADDN)
    infer_shape(out['vec'], OutType.CONCAT)
    infer_shape(out['ffm1'], OutType.STACK)
    infer_shape(out['ffm2'], OutType.NONE)
    for k, v in out.items():
      feature_cfgs.out_configs[k].CopyFrom(v)
    return feature_cfgs

  def test_fused_embedding_to_layout(self):
    batch_size, num_ps = 10, 5
    slots = list(range(1, 50))
    names = {slot: f'fc_slot_{slot}' for slot in slots}
    feature_cfgs = self._cfgs(names, slots, 25)
    feature_name_sort = sorted(feature_cfgs.feature_configs)
    tables = ['table_one', 'table_two']
    fid_offset_list, feature_offset_list, nfl_offset_list = [], [0], [0]
    fids_dict = {t: {ps: [] for ps in range(num_ps)} for t in tables}
    row_counter = [0] * (2 * num_ps)
    entry_fids = {}
    for name in feature_name_sort:
      slot = int(name[len('fc_slot_'):])
      table = feature_cfgs.feature_configs[name].table
      entry_fids[name] = []
      for _ in range(1 if slot % 2 == 0 else batch_size):
        fids = list({(slot << 48) + randint(100, 1000000) for _ in range(randint(1, 5))})
        entry_fids[name].append(fids)
        for fid in fids:
          shard = fid % num_ps
          index1 = shard if table == 'table_one' else num_ps + shard
          fid_offset_list.append(index1 << 32 | row_counter[index1])
          row_counter[index1] += 1
          fids_dict[table][shard].append(fid)
        feature_offset_list.append(len(fid_offset_list))
      nfl_offset_list.append(len(feature_offset_list) - 1)
    for i, name in enumerate(feature_name_sort):
      if int(name[len('fc_slot_'):]) % 2 == 0:
        nfl_offset_list[i] |= SHARD_BIT

    embeddings, fid_to_emb = [], {}
    for table in tables:
      width = 13 if table == 'table_one' else 21
      for shard in range(num_ps):
        emb = np.random.uniform(size=(len(fids_dict[table][shard]), width)).astype(np.float32)
        for row, fid in enumerate(fids_dict[table][shard]):
          fid_to_emb[fid] = emb[row]
        embeddings.append(emb)
    expected = expected_layouts(feature_cfgs, entry_fids, fid_to_emb, batch_size)

    with tf.Graph().as_default():
      layouts = distribution_ops.fused_embedding_to_layout(
          [tf.constant(e) for e in embeddings],
          None,
          tf.constant(fid_offset_list, dtype=tf.uint64),
          tf.constant(feature_offset_list, dtype=tf.int32),
          tf.constant(nfl_offset_list, dtype=tf.uint32),
          tf.constant([batch_size], dtype=tf.int32),
          'example_batch',
          feature_cfgs,
          -1,
          version=1)
      with self.session() as sess:
        actual = sess.run(layouts)
    self.assertEqual(len(actual), 28)
    for exp, act in zip(expected, actual):
      self.assertEqual(exp.shape, act.shape)
      self.assertTrue(np.allclose(exp, act, rtol=1e-4, atol=1e-7))

  def test_fused_embedding_to_layout_grad(self):
    batch_size = 4
    slots = list(range(1, 30))
    letters = [chr(ord('a') + i) for i in range(26)] + ['za', 'zb', 'zc']
    names = {slot: f'fc_slot_{letters[slot - 1]}' for slot in slots}
    feature_cfgs = self._cfgs(names, slots, 15)
    blocks = [[] for _ in range(4)]  # fids per block; blocks 0, 1: 13 wide, 2, 3: 21 wide
    fid_offset_list, feature_offset_list, nfl_offset_list = [], [0], [0]
    truth = [{} for _ in range(4)]
    for slot in slots:
      cfg = feature_cfgs.feature_configs[names[slot]]
      table_idx = 0 if cfg.table == 'table_one' else 2
      fids = _distinct_fids(randint(2, 10), lambda: (slot << 48) + randint(100, 1000000))
      location = {}
      for fid in fids:
        block = table_idx if fid % 2 else table_idx + 1
        location[fid] = (block, len(blocks[block]))
        blocks[block].append(fid)
      for _ in range(batch_size):
        fid_num = randint(0, len(fids))
        for _ in range(fid_num):
          block, row = location[fids[randint(1, len(fids) - 1)]]
          fid_offset_list.append(block << 32 | row)
          truth[block][row] = truth[block].get(row, 0.0) + (
              1.0 / fid_num if cfg.pooling_type == PoolingType.MEAN else 1.0)
        feature_offset_list.append(len(fid_offset_list))
      nfl_offset_list.append(len(feature_offset_list) - 1)
    embeddings = [
        np.random.uniform(size=(len(blocks[b]), 13 if b < 2 else 21)).astype(np.float32)
        for b in range(4)
    ]
    with tf.Graph().as_default():
      emb_inputs = [tf.constant(e) for e in embeddings]
      layouts = distribution_ops.fused_embedding_to_layout(
          emb_inputs,
          None,
          tf.constant(fid_offset_list, dtype=tf.uint64),
          tf.constant(feature_offset_list, dtype=tf.int32),
          tf.constant(nfl_offset_list, dtype=tf.uint32),
          tf.constant([batch_size], dtype=tf.int32),
          'example',
          feature_cfgs,
          -1,
          version=1)
      grads_t = tf.gradients(layouts, emb_inputs)
      with self.session() as sess:
        grads = sess.run(grads_t)
    for b in range(4):
      self.assertEqual(grads[b].shape, embeddings[b].shape)
      for row in range(len(blocks[b])):
        self.assertTrue(np.all(grads[b][row] == grads[b][row][0]))
        self.assertTrue(np.allclose(grads[b][row][0], truth[b].get(row, 0.0), rtol=1e-4,
                                    atol=1e-7))


if __name__ == '__main__':
  tf.test.main()
