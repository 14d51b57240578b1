"""Deep insight message building: the C++ MonolithWriteDeepInsightV2 op versus the same messages
built in Python with json.dumps (the natural pure-Python peer), on identical batches.

Prints rows/s of both and the ratio (op / python).

  bazel run //benchmarks:deep_insight_ops_benchmark -- --batch_size=4096 --iters=20
"""

import json
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from monolith.native_training.metric import deep_insight_ops

flags.DEFINE_integer("batch_size", 4096, "Rows per batch.")
flags.DEFINE_integer("num_targets", 3, "Targets per row.")
flags.DEFINE_integer("iters", 20, "Timed iterations of each implementation.")
FLAGS = flags.FLAGS


def _python_messages(uids, req_times, labels, preds, rates, extra_float, targets, model_name):
  out = []
  for b in range(len(uids)):
    out.append(
        json.dumps(
            {
                "extra_float": {
                    "dwell": float(extra_float[b])
                },
                "labels": [float(v) for v in labels[:, b]],
                "model_name": model_name,
                "preds": [float(v) for v in preds[:, b]],
                "req_time": int(req_times[b]),
                "sample_rates": [float(v) for v in rates[:, b]],
                "targets": targets,
                "train_time": 0,
                "uid": int(uids[b]),
            },
            sort_keys=True,
            separators=(",", ":")).encode())
  return out


def _as_float32(value):
  if isinstance(value, dict):
    return {k: _as_float32(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_as_float32(v) for v in value]
  if isinstance(value, float):
    return np.float32(value)
  return value


def main(argv):
  del argv
  tf.compat.v1.disable_eager_execution()
  n, t = FLAGS.batch_size, FLAGS.num_targets
  rng = np.random.default_rng(0)
  uids = rng.integers(0, 1 << 40, n, dtype=np.int64)
  req_times = rng.integers(1600000000, 1700000000, n, dtype=np.int64)
  labels = rng.integers(0, 2, (t, n)).astype(np.float32)
  preds = rng.random((t, n), dtype=np.float32)
  rates = np.full((t, n), 0.5, np.float32)
  dwell = rng.random(n, dtype=np.float32)
  targets = ["target_{}".format(j) for j in range(t)]

  client = deep_insight_ops.deep_insight_client(is_fake=True)
  msgs = deep_insight_ops.write_deep_insight_v2(client,
                                                tf.constant(req_times),
                                                tf.constant(labels),
                                                tf.constant(preds),
                                                tf.constant(rates),
                                                [tf.constant(uids), tf.constant(dwell)],
                                                ["uid", "dwell"],
                                                model_name="bench",
                                                targets=targets,
                                                sample_ratio=1.0,
                                                return_msgs=True,
                                                use_zero_train_time=True)
  with tf.compat.v1.Session() as sess:
    op_out = sess.run(msgs)  # warm-up, and the output to check against the peer
    start = time.perf_counter()
    for _ in range(FLAGS.iters):
      sess.run(msgs)
    op_secs = (time.perf_counter() - start) / FLAGS.iters

  py_out = _python_messages(uids, req_times, labels, preds, rates, dwell, targets, "bench")
  start = time.perf_counter()
  for _ in range(FLAGS.iters):
    _python_messages(uids, req_times, labels, preds, rates, dwell, targets, "bench")
  py_secs = (time.perf_counter() - start) / FLAGS.iters

  # The op prints float32 values in their shortest form, Python their float64 expansion.
  same = [_as_float32(json.loads(a)) == _as_float32(json.loads(b)) for a, b in zip(op_out, py_out)]
  if not all(same):
    raise SystemExit("op and python messages differ at row {}".format(same.index(False)))
  print("batch_size={} targets={} iters={}".format(n, t, FLAGS.iters))
  print("MonolithWriteDeepInsightV2: {:.0f} rows/s".format(n / op_secs))
  print("python json.dumps peer:     {:.0f} rows/s".format(n / py_secs))
  print("ratio (op / python): {:.2f}x".format(py_secs / op_secs))


if __name__ == "__main__":
  app.run(main)
