"""Benchmarks the Monolith hash table ops against TensorFlow's own tables in the same process.

For each key count and dim: insert (assign) and lookup throughput in rows/s with batches of
65,536 ids, issued from 1 and 2 concurrent session threads, against
tf.lookup.experimental.DenseHashTable and tf.lookup.experimental.MutableHashTable holding the
same rows; Adagrad apply_gradients against the equivalent composed TF ops (scatter_add of g^2
into an accumulator, gather, scatter_sub) on dense variables; and the process RSS growth per
entry of our table against the payload (8-byte key + 4*dim embedding + optimizer state),
measured over the batches after the first with freed heap memory returned to the OS before and
after. Every ratio is printed ("x" = ours / peer).

The compared tables stay alive side by side and are timed in alternating rounds (best round
each), so that load from other processes hits every table alike. Each (keys, dim, threads)
configuration's tables and its Adagrad step each run in a child process of their own (see
_run_each_in_child).

  bazel run //benchmarks:hash_table_bench -- --keys=1000000,10000000 --dims=16,64
"""
import ctypes
import gc
import itertools
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import psutil
import tensorflow as tf

from monolith.native_training import entry
from monolith.native_training import hash_table_ops
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2

FLAGS = flags.FLAGS
flags.DEFINE_list("keys", ["1000000", "10000000"], "Numbers of keys held by each table.")
flags.DEFINE_list("dims", ["16", "64"], "Embedding dims.")
flags.DEFINE_list("threads", ["1", "2"], "Concurrent session threads issuing batches.")
flags.DEFINE_integer("batch", 65536, "Ids per op call.")
flags.DEFINE_enum("phase", "all", ["all", "tables", "adagrad"],
                  "Which measurements: the tables' insert, lookup and RSS; Adagrad "
                  "apply_gradients; or both.")
flags.DEFINE_integer("timing_rounds", 5,
                     "Alternating timing rounds of lookups and of apply_gradients (one pass over "
                     "all keys each); the best round counts.")

_EMPTY_KEY = -1
_DELETED_KEY = -2


def _session(threads: int, graph=None) -> tf.compat.v1.Session:
  config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                    inter_op_parallelism_threads=threads)
  return tf.compat.v1.Session(graph=graph, config=config)


def _rss() -> int:
  return psutil.Process().memory_info().rss


def _release_freed_memory():
  """Returns freed heap memory to the OS now, so it cannot shrink the RSS during a measurement."""
  gc.collect()
  ctypes.CDLL("libc.so.6").malloc_trim(0)


def _timed_batches(sess, op, feed, num_batches: int, threads: int, first: int = 0) -> float:
  """Runs `op` once per batch index in [first, num_batches) (fed into `feed`) from `threads`
  threads; returns seconds."""

  def worker(t):
    for b in range(first + t, num_batches, threads):
      sess.run(op, feed_dict={feed: b})

  start = time.perf_counter()
  pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
  for p in pool:
    p.start()
  for p in pool:
    p.join()
  return time.perf_counter() - start


class _Inputs(object):
  """All ids in a variable; batch b is slice [b*batch, (b+1)*batch) of it."""

  def __init__(self, ids: np.ndarray, batch: int, dim: int):
    self.batch_index = tf.compat.v1.placeholder(tf.int64, [])
    self.ids_var = tf.Variable(ids, trainable=False)
    self.ids = tf.slice(self.ids_var, [self.batch_index * batch], [batch])
    self.values = tf.ones([batch, dim], tf.float32)


def _table_config(dim: int, optimizer: str, capacity: int) -> entry.HashTableConfigInstance:
  config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
  config.cuckoo.SetInParent()
  config.initial_capacity = capacity
  segment = config.entry_config.segments.add(dim_size=dim)
  getattr(segment.opt_config, optimizer).SetInParent()
  segment.init_config.zeros.SetInParent()
  segment.comp_config.fp32.SetInParent()
  return entry.HashTableConfigInstance(config, [0.01])


_TABLES = ["monolith", "DenseHashTable", "MutableHashTable"]


def _bench_tables(keys: int, dim: int, threads: int, batch: int):
  """{table: (insert rows/s, lookup rows/s, RSS growth per inserted row)}."""
  rng = np.random.default_rng(keys + dim)
  ids = rng.choice(np.int64(1) << 62, size=keys, replace=False).astype(np.int64)
  queries = rng.permutation(ids)
  num_batches = keys // batch
  sessions = {}
  results = {}
  try:
    for name in _TABLES:
      graph = tf.Graph()
      with graph.as_default():
        insert_inputs = _Inputs(ids, batch, dim)
        lookup_inputs = _Inputs(queries, batch, dim)
        if name == "monolith":
          table = hash_table_ops.hash_table_from_config(_table_config(dim, "sgd", 1),
                                                        name_suffix="bench")
          insert = table.assign(insert_inputs.ids, insert_inputs.values).as_op()
        else:
          if name == "DenseHashTable":
            table = tf.lookup.experimental.DenseHashTable(tf.int64,
                                                          tf.float32,
                                                          default_value=tf.zeros([dim]),
                                                          empty_key=_EMPTY_KEY,
                                                          deleted_key=_DELETED_KEY)
          else:
            table = tf.lookup.experimental.MutableHashTable(tf.int64,
                                                            tf.float32,
                                                            default_value=tf.zeros([dim]))
          insert = table.insert(insert_inputs.ids, insert_inputs.values)
        lookup = table.lookup(lookup_inputs.ids)
        init = tf.compat.v1.global_variables_initializer()
      sess = _session(threads, graph)
      sessions[name] = (sess, lookup.op, lookup_inputs.batch_index)
      sess.run(init)
      # Warm up: creating the table and the first run of each fetch (graph setup, constant
      # inputs) are one-time costs; batch 0 is inserted here, the rest is measured.
      sess.run(insert, feed_dict={insert_inputs.batch_index: 0})
      sess.run(lookup.op, feed_dict={lookup_inputs.batch_index: 0})
      _release_freed_memory()
      rss_before = _rss()
      insert_s = _timed_batches(sess, insert, insert_inputs.batch_index, num_batches, threads,
                                first=1)
      _release_freed_memory()  # the batches' freed temporaries are not the table's
      inserted = (num_batches - 1) * batch
      results[name] = [inserted / insert_s, 0.0, (_rss() - rss_before) / inserted]
    for _ in range(FLAGS.timing_rounds):
      for name in _TABLES:
        sess, op, feed = sessions[name]
        rate = num_batches * batch / _timed_batches(sess, op, feed, num_batches, threads)
        results[name][1] = max(results[name][1], rate)
  finally:
    for sess, _, _ in sessions.values():
      sess.close()
  return results


def _bench_adagrad(keys: int, dim: int, threads: int, batch: int):
  """Rows/s of one Adagrad step per batch (best of alternating rounds): our table vs composed
  ops on dense variables."""
  rng = np.random.default_rng(keys * 3 + dim)
  order = rng.permutation(keys).astype(np.int64)  # distinct rows within every batch
  num_batches = keys // batch
  sessions = {}
  out = {}
  try:
    for name in ["monolith", "composed"]:
      gc.collect()
      graph = tf.Graph()
      with graph.as_default():
        inputs = _Inputs(order, batch, dim)
        grads = inputs.values * 0.5
        if name == "monolith":
          table = hash_table_ops.hash_table_from_config(_table_config(dim, "adagrad", keys),
                                                        name_suffix="adagrad")
          fill = table.assign(inputs.ids, tf.zeros([batch, dim])).as_op()
          step = table.apply_gradients(inputs.ids, grads,
                                       global_step=tf.constant(0, tf.int64)).as_op()
        else:
          weights = tf.Variable(tf.zeros([keys, dim]))
          accum = tf.Variable(tf.fill([keys, dim], 0.1))
          fill = tf.no_op()
          new_accum = tf.compat.v1.scatter_add(accum, inputs.ids, grads * grads)
          update = 0.01 * grads * tf.math.rsqrt(tf.gather(new_accum, inputs.ids))
          step = tf.compat.v1.scatter_sub(weights, inputs.ids, update).op
        init = tf.compat.v1.global_variables_initializer()
      sess = _session(threads, graph)
      sessions[name] = (sess, step, inputs.batch_index)
      sess.run(init)
      for b in range(num_batches):
        sess.run(fill, feed_dict={inputs.batch_index: b})
      out[name] = 0.0
    for _ in range(FLAGS.timing_rounds):
      for name, (sess, step, feed) in sessions.items():
        rate = num_batches * batch / _timed_batches(sess, step, feed, num_batches, threads)
        out[name] = max(out[name], rate)
  finally:
    for sess, _, _ in sessions.values():
      sess.close()
  return out


def _report_tables(keys: int, dim: int, threads: int, batch: int):
  payload = 8 + 4 * dim
  # Throwaway round: first-use costs of the TF runtime (thread pools, per-thread malloc arenas)
  # would otherwise be charged to whichever table is measured first.
  _bench_tables(4 * batch, 16, threads, batch)
  r = _bench_tables(keys, dim, threads, batch)
  ours = r["monolith"]
  for peer in ["DenseHashTable", "MutableHashTable"]:
    p = r[peer]
    print("keys=%d dim=%d threads=%d vs %-16s insert %6.2fM/%6.2fM rows/s x%.2f | "
          "lookup %6.2fM/%6.2fM rows/s x%.2f | RSS/entry %.0f/%.0f B" %
          (keys, dim, threads, peer, ours[0] / 1e6, p[0] / 1e6, ours[0] / p[0], ours[1] / 1e6,
           p[1] / 1e6, ours[1] / p[1], ours[2], p[2]),
          flush=True)
  print("keys=%d dim=%d threads=%d monolith (sgd) RSS/entry %.1f B vs payload %d B: x%.2f" %
        (keys, dim, threads, ours[2], payload, ours[2] / payload),
        flush=True)


def _report_adagrad(keys: int, dim: int, threads: int, batch: int):
  a = _bench_adagrad(keys, dim, threads, batch)
  print("keys=%d dim=%d threads=%d adagrad apply_gradients %.2fM rows/s vs composed TF "
        "ops %.2fM rows/s: x%.2f" % (keys, dim, threads, a["monolith"] / 1e6,
                                     a["composed"] / 1e6, a["monolith"] / a["composed"]),
        flush=True)


_PHASES = {"tables": _report_tables, "adagrad": _report_adagrad}


def _run_each_in_child(units) -> int:
  """Runs every ((keys, dim, threads), phase) unit in a fresh child process of this script:
  - TF sizes the thread pools of every session in a process by the first session's config, so
    in one process the "1 thread" runs gave the composed peer ops two intra-op threads;
  - memory freed by one phase is not all returned to the OS (TF's CPU allocator keeps the peers'
    tensors pooled), and at 10M keys and dim 64 the tables phase peaks near 17 GB of RSS and
    leaves ~9 GB held: the Adagrad phase on top of it was killed for memory on a 23 GB machine.
  Returns the exit status: 1 if any child failed."""
  failed = []
  for (keys, dim, threads), phase in units:
    args = ["--keys=%d" % keys, "--dims=%d" % dim, "--threads=%d" % threads,
            "--batch=%d" % FLAGS.batch, "--timing_rounds=%d" % FLAGS.timing_rounds,
            "--phase=%s" % phase]
    logging.info("running %s", " ".join(args))
    rc = subprocess.call([sys.executable, sys.argv[0]] + args)
    if rc != 0:
      failed.append("%s (exit status %d)" % (" ".join(args), rc))
  for f in failed:
    logging.error("failed: %s", f)
  return 1 if failed else 0


def main(argv):
  del argv
  configs = list(itertools.product(map(int, FLAGS.keys), map(int, FLAGS.dims),
                                   map(int, FLAGS.threads)))
  small = [k for k in map(int, FLAGS.keys) if k < 2 * FLAGS.batch]
  if small:
    # Batch 0 is the warm-up: fewer than two batches leave nothing to time.
    raise app.UsageError("--keys %s: each must be at least 2 * --batch = %d" %
                         (",".join(map(str, small)), 2 * FLAGS.batch))
  phases = list(_PHASES) if FLAGS.phase == "all" else [FLAGS.phase]
  units = list(itertools.product(configs, phases))
  if len(units) > 1:
    return _run_each_in_child(units)
  tf.compat.v1.disable_eager_execution()
  (keys, dim, threads), phase = units[0]
  _PHASES[phase](keys, dim, threads, FLAGS.batch)
  return 0


if __name__ == "__main__":
  app.run(main)
