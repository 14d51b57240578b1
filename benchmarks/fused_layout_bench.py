"""Fused embedding-to-layout ops versus the same computation composed from stock TF ops.

Workload (per the issue): 100 features over 10 tables (5 SUM tables, 5 MEAN tables), 3-7 fids per
(feature, example) (5 on average), every fid of a feature drawn from a vocabulary of
--vocab distinct ids (so each table holds 10 · vocab embedding rows, deduplicated as with
`unique=True`). Two layouts: `concat` (CONCAT of every feature's full embedding, [B, 100·dim]) and
`bias` (ADDN of every feature's element 0, [B, 1]).

Peer: per table one tf.gather of the occurrences' rows and tf.math.segment_sum / segment_mean per
(feature, example) (suffix g), or the two in one tf.sparse.segment_sum / segment_mean (suffix s),
then slicing, tf.concat and tf.add_n into the same two layouts. Each row reports the faster of the
two: sparse.segment_* never materialises the gathered rows, but its gradient is a dense table
(like the fused op's), while gather's is a cheaper IndexedSlices.

For every (dim, batch) and op version 1-4, prints the minimum milliseconds over --iters runs of the forward and of
forward+backward (gradient w.r.t. the embeddings) for both, and the ratio stock / fused. The two are
timed alternately, run by run, so that a busy machine slows both alike. The fused ops use TF's CPU
worker pool whatever their parallel_flag (see fused_embedding_to_layout.cc), so none is passed.

  bazel run //benchmarks:fused_layout_bench -- --dims=16,64 --batch_sizes=1024,4096 --iters=10
"""
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from idl.matrix.proto.example_pb2 import (FeatureConfig, FeatureConfigs, OutConfig, OutType,
                                          PoolingType, SliceConfig, TensorShape)
from monolith.native_training import distribution_ops

flags.DEFINE_list('dims', ['16', '64'], 'Embedding dims to run.')
flags.DEFINE_list('batch_sizes', ['1024', '4096'], 'Batch sizes to run.')
flags.DEFINE_list('versions', ['1', '2', '3', '4'], 'Fused op versions to run.')
flags.DEFINE_integer('vocab', 2000, 'Distinct fids per feature.')
flags.DEFINE_integer('iters', 10, 'Timed iterations (the minimum is reported).')
FLAGS = flags.FLAGS

NUM_TABLES = 10
FEATURES_PER_TABLE = 10


def make_config(dim):
  cfgs = FeatureConfigs()
  concat = OutConfig(out_type=OutType.CONCAT)
  bias = OutConfig(out_type=OutType.ADDN)
  for ti in range(NUM_TABLES):
    for k in range(FEATURES_PER_TABLE):
      name = 'f%d_%d' % (ti, k)
      cfgs.feature_configs[name].CopyFrom(
          FeatureConfig(table='t%d' % ti,
                        pooling_type=PoolingType.SUM if ti < NUM_TABLES // 2 else PoolingType.MEAN,
                        slice_dims=[dim]))
      concat.slice_configs.append(SliceConfig(feature_name=name, start=0, end=dim))
      bias.slice_configs.append(SliceConfig(feature_name=name, start=0, end=1))
  concat.shape.append(TensorShape(dims=[-1, NUM_TABLES * FEATURES_PER_TABLE * dim]))
  bias.shape.append(TensorShape(dims=[-1, 1]))
  cfgs.out_configs['concat'].CopyFrom(concat)
  cfgs.out_configs['bias'].CopyFrom(bias)
  return cfgs


class Batch(object):
  """Random occurrences and the offsets of every op version for them (ps_num = 1)."""

  def __init__(self, rng, batch_size, dim, vocab):
    self.batch_size = batch_size
    names = sorted('f%d_%d' % (ti, k) for ti in range(NUM_TABLES) for k in range(FEATURES_PER_TABLE))
    self.counts = {n: rng.randint(3, 8, size=batch_size) for n in names}
    self.vocab_idx = {n: rng.randint(0, vocab, size=self.counts[n].sum()) for n in names}
    self.tables = [rng.uniform(-1, 1, size=(FEATURES_PER_TABLE * vocab, dim)).astype(np.float32)
                   for _ in range(NUM_TABLES)]
    # Per-table row of every occurrence: feature k's vocabulary occupies rows [k·vocab, (k+1)·vocab).
    fid_offset = {v: [] for v in (1, 2, 3)}
    feature_offset, nfl_offset, total = [], [], 0
    self.stock_rows, self.stock_segments = {}, {}
    for n in names:
      ti, k = map(int, n[1:].split('_'))
      rows = k * vocab + self.vocab_idx[n]
      nfl_offset.append(len(feature_offset))
      starts = total + np.concatenate([[0], np.cumsum(self.counts[n])[:-1]])
      feature_offset.extend(starts.tolist())
      total += len(rows)
      fid_offset[1].append((np.uint64(ti) << np.uint64(32)) | rows.astype(np.uint64))
      fid_offset[2].append((np.uint64(ti * FEATURES_PER_TABLE + k) << np.uint64(32)) |
                           self.vocab_idx[n].astype(np.uint64))
      fid_offset[3].append((np.uint64(ti) << np.uint64(32)) | (rows * dim).astype(np.uint64))
      self.stock_rows.setdefault(ti, []).append(rows)
      self.stock_segments.setdefault(ti, []).append(
          k * batch_size + np.repeat(np.arange(batch_size), self.counts[n]))
    nfl_offset.append(len(feature_offset))
    feature_offset.append(total)
    self.fid_offset = {v: np.concatenate(o) for v, o in fid_offset.items()}
    self.fid_offset[4] = self.fid_offset[3]
    self.feature_offset = np.array(feature_offset, np.int32)
    self.nfl_offset = np.array(nfl_offset, np.uint32)
    # v2 row splits: each table's features own `vocab` consecutive fids of the (table, shard) list.
    self.row_splits = [np.arange(FEATURES_PER_TABLE + 1, dtype=np.int64) * vocab] * NUM_TABLES
    self.num_fids = total


def _variable(value):
  # A variable, not a constant: Grappler would constant-fold the whole stock computation.
  return tf.compat.v1.Variable(value, use_resource=True)


def fused_graph(batch, cfgs, version, dim):
  if version == 1:
    embs = [_variable(t) for t in batch.tables]
  elif version == 4:
    embs = [_variable(np.concatenate([t.reshape(-1) for t in batch.tables]))]
  else:
    embs = [_variable(t.reshape(-1)) for t in batch.tables]
  layouts = distribution_ops.fused_embedding_to_layout(
      embs, [tf.constant(s) for s in batch.row_splits] if version == 2 else None,
      tf.constant(batch.fid_offset[version]), tf.constant(batch.feature_offset),
      tf.constant(batch.nfl_offset), tf.constant([batch.batch_size], tf.int32), 'example', cfgs, 1,
      fid_list_emb_row_lenth=tf.constant([t.size for t in batch.tables], tf.int32)
      if version == 4 else None,
      version=version)
  return embs, layouts


def stock_graph(batch, dim, fused_gather):
  """fused_gather: tf.sparse.segment_sum/mean (gather and reduce in one op, dense gradient);
  else tf.gather then tf.math.segment_sum/mean (sparse IndexedSlices gradient)."""
  embs = [_variable(t) for t in batch.tables]
  pooled = []
  for ti in range(NUM_TABLES):
    # Segment ids k·B + example are already sorted, and every segment has >= 3 fids.
    rows = tf.constant(np.concatenate(batch.stock_rows[ti]).astype(np.int32))
    seg = tf.constant(np.concatenate(batch.stock_segments[ti]).astype(np.int32))
    if fused_gather:
      reduce = tf.sparse.segment_sum if ti < NUM_TABLES // 2 else tf.sparse.segment_mean
      per_entry = reduce(embs[ti], rows, seg)
    else:
      reduce = tf.math.segment_sum if ti < NUM_TABLES // 2 else tf.math.segment_mean
      per_entry = reduce(tf.gather(embs[ti], rows), seg)
    pooled.extend(tf.split(per_entry, FEATURES_PER_TABLE))
  # `pooled` is in (table, feature) order = sorted feature-name order.
  concat = tf.concat(pooled, axis=1)
  bias = tf.add_n([p[:, 0:1] for p in pooled])
  return embs, [bias, concat]  # layouts sorted by name: bias, concat


def time_interleaved(runs, iters):
  """Minimum milliseconds of each (session, fetch) in `runs`, timed round-robin: on a shared
  machine, load that comes and goes then hits the peer and the fused op alike."""
  for sess, fetch in runs:
    sess.run(fetch)  # warm-up
  times = [[] for _ in runs]
  for _ in range(iters):
    for (sess, fetch), t in zip(runs, times):
      start = time.perf_counter()
      sess.run(fetch)
      t.append(time.perf_counter() - start)
  # The minimum: the least disturbed run.
  return [1000 * float(np.min(t)) for t in times]


def stock_session(batch, dim, fused_gather):
  graph = tf.Graph()
  with graph.as_default():
    embs, layouts = stock_graph(batch, dim, fused_gather)
    grads = tf.gradients(layouts, embs)
    init = tf.compat.v1.global_variables_initializer()
  sess = tf.compat.v1.Session(graph=graph)
  sess.run(init)
  return sess, layouts, grads


def main(_):
  tf.compat.v1.disable_eager_execution()
  rng = np.random.RandomState(0)
  print('%-5s %-6s %-3s | %12s %12s %7s | %12s %12s %7s' %
        ('dim', 'batch', 'ver', 'fused fwd ms', 'stock fwd ms', 'ratio', 'fused f+b ms',
         'stock f+b ms', 'ratio'))
  for dim in map(int, FLAGS.dims):
    cfgs = make_config(dim)
    for batch_size in map(int, FLAGS.batch_sizes):
      batch = Batch(rng, batch_size, dim, FLAGS.vocab)
      stocks = [stock_session(batch, dim, fused_gather) for fused_gather in (False, True)]
      references = [sess.run(layouts) for sess, layouts, _ in stocks]
      for version in map(int, FLAGS.versions):
        fused = tf.Graph()
        with fused.as_default():
          f_embs, f_layouts = fused_graph(batch, cfgs, version, dim)
          f_grads = tf.gradients(f_layouts, f_embs)
          f_init = tf.compat.v1.global_variables_initializer()
        with tf.compat.v1.Session(graph=fused) as f_sess:
          f_sess.run(f_init)
          got = f_sess.run(f_layouts)
          for reference in references:  # same computation, checked before timing
            for want, have in zip(reference, got):
              np.testing.assert_allclose(want, have, rtol=1e-4, atol=1e-4)
          # The peer is the faster stock composition (g: gather + segment_*, s: sparse.segment_*).
          fwd = time_interleaved([(f_sess, f_layouts)] + [(s, l) for s, l, _ in stocks], FLAGS.iters)
          fb = time_interleaved([(f_sess, f_grads)] + [(s, g) for s, _, g in stocks], FLAGS.iters)
        stock_fwd, stock_fb = min(fwd[1:]), min(fb[1:])
        print('%-5d %-6d v%-2d | %12.2f %11.2f%s %6.2fx | %12.2f %11.2f%s %6.2fx' %
              (dim, batch_size, version, fwd[0], stock_fwd, 'gs'[fwd.index(stock_fwd) - 1],
               stock_fwd / fwd[0], fb[0], stock_fb, 'gs'[fb.index(stock_fb) - 1], stock_fb / fb[0]),
              flush=True)
      for sess, _, _ in stocks:
        sess.close()


if __name__ == '__main__':
  app.run(main)
