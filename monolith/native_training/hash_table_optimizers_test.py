"""Every table optimizer, run through the TF ops, against a numpy re-derivation of its formula
(native_ops.md §1.8) over several steps with random gradients and a save/restore in between."""
import os

import numpy as np
import tensorflow as tf

from monolith.native_training import entry
from monolith.native_training import hash_table_ops
from monolith.native_training.runtime.hash_table import embedding_hash_table_pb2

DIM = 5
LR = 0.05
STEPS = 4


def _sgd(w, g, s, step):
  return w - LR * g


def _adagrad(w, g, s, step):
  s.setdefault("n", np.full(DIM, 0.1))
  s["n"] += g * g
  return w - LR / np.sqrt(s["n"]) * g


def _ftrl(w, g, s, step):
  s.setdefault("n", np.full(DIM, 0.1))
  s.setdefault("z", np.zeros(DIM))
  n_new = s["n"] + g * g
  sigma = (np.sqrt(n_new) - np.sqrt(s["n"])) / LR
  s["z"] += g - sigma * w
  s["n"] = n_new
  l1 = 0.0
  sign = np.where(s["z"] < 0, 1.0, 0.0)  # upstream's quirk Q6 (identical for l1 = 0)
  return np.where(np.abs(s["z"]) > l1, LR * (sign * l1 - s["z"]) / (np.sqrt(s["n"]) + 0.0), 0.0)


def _adam(amsgrad):

  def update(w, g, s, step):
    b1, b2, eps = 0.9, 0.99, 0.01
    s.setdefault("m", np.zeros(DIM))
    s.setdefault("v", np.zeros(DIM))
    s.setdefault("vhat", np.zeros(DIM))
    s.setdefault("p", [b1, b2])
    lr_t = LR * np.sqrt(1 - s["p"][1]) / (1 - s["p"][0])
    s["m"] += (g - s["m"]) * (1 - b1)
    s["v"] += (g * g - s["v"]) * (1 - b2)
    v = s["v"]
    if amsgrad:
      s["vhat"] = np.maximum(s["vhat"], s["v"])
      v = s["vhat"]
    s["p"] = [s["p"][0] * b1, s["p"][1] * b2]
    return w - lr_t * s["m"] / (np.sqrt(v) + eps)

  return update


def _momentum(w, g, s, step):
  s.setdefault("n", np.zeros(DIM))
  s["n"] = 0.9 * s["n"] - LR * g
  return w + s["n"]


def _rmsprop(v2):

  def update(w, g, s, step):
    s.setdefault("n", np.zeros(DIM))
    if v2:
      s["n"] = 0.9 * s["n"] + g * g
      return w - LR / (np.sqrt(s["n"]) + 1) * g
    s["n"] = 0.9 * s["n"] + 0.1 * g * g
    return w - 0.01 / (np.sqrt(s["n"]) + 1) * g  # rmsprop uses the config learning rate

  return update


def _adadelta(w, g, s, step):
  rho, eps = 0.9, 0.01
  s.setdefault("acc", np.zeros(DIM))
  s.setdefault("accu", np.zeros(DIM))
  acc = rho * s["acc"] + (1 - rho) * g * g
  delta = np.sqrt(s["accu"] + eps) / np.sqrt(acc + eps) * g
  s["accu"] = rho * s["accu"] + (1 - rho) * delta * delta
  s["acc"] = acc
  return w - LR * delta


def _moving_average(w, g, s, step):
  return 0.9 * w + 0.1 * g


def _group_adagrad(w, g, s, step):
  s.setdefault("G", 0.1)
  s["G"] += np.max(g * g)
  eta = LR / (0.0 + np.sqrt(s["G"]))
  z = g - w / eta
  norm = np.linalg.norm(z)
  return np.zeros(DIM) if norm < 0.0 else -eta * (norm - 0.0) / norm * z


_CASES = {
    "sgd": _sgd,
    "adagrad": _adagrad,
    "ftrl": _ftrl,
    "adam": _adam(False),
    "amsgrad": _adam(True),
    "momentum": _momentum,
    "rmsprop": _rmsprop(False),
    "rmspropv2": _rmsprop(True),
    "adadelta": _adadelta,
    "moving_average": _moving_average,
    "group_adagrad": _group_adagrad,
}


class HashTableOptimizersTest(tf.test.TestCase):

  def _table(self, optimizer, suffix, dim=DIM):
    config = embedding_hash_table_pb2.EmbeddingHashTableConfig()
    config.cuckoo.SetInParent()
    segment = config.entry_config.segments.add(dim_size=dim)
    getattr(segment.opt_config, optimizer).SetInParent()
    segment.init_config.zeros.SetInParent()
    return hash_table_ops.hash_table_from_config(entry.HashTableConfigInstance(config, [LR]),
                                                 name_suffix=suffix)

  def test_optimizers_match_numpy(self):
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(STEPS, 2, DIM)).astype(np.float32)
    for name, update in _CASES.items():
      basename = os.path.join(self.get_temp_dir(), name, "table")
      with self.subTest(optimizer=name), tf.Graph().as_default(), self.session() as sess:
        ids = tf.constant([3, 1 << 50], dtype=tf.int64)
        table = self._table(name, name)
        restored = self._table(name, name + "_restored")
        grad = tf.compat.v1.placeholder(tf.float32, [2, DIM])
        step = tf.compat.v1.placeholder(tf.int64, [])
        apply_op = {
            t.name: t.apply_gradients(ids, grad, global_step=step).as_op()
            for t in [table, restored]
        }
        save_op = table.save(basename).as_op()
        restore_op = restored.restore(basename).as_op()
        lookup = restored.lookup(ids)
        want = np.zeros((2, DIM))
        states = [{}, {}]
        for s in range(STEPS):
          # The first half runs on `table`, which is then saved and restored into `restored`.
          target = table if s < STEPS // 2 else restored
          if s == STEPS // 2:
            sess.run(save_op)
            sess.run(restore_op)
          sess.run(apply_op[target.name], feed_dict={grad: grads[s], step: s})
          for r in range(2):
            want[r] = update(want[r], grads[s][r].astype(np.float64), states[r], s)
        self.assertAllClose(sess.run(lookup), want, rtol=2e-4, atol=2e-5)

  def test_batch_softmax(self):
    with self.session() as sess:
      table = self._table("batch_softmax", "bs", dim=1)
      one = tf.constant([7], tf.int64)
      step = tf.compat.v1.placeholder(tf.int64, [])
      apply_op = table.apply_gradients(one, tf.zeros([1, 1]), global_step=step).as_op()
      # Re-derived: w <- (1 - lr) * w + lr * (step - last_step).
      w, last = 0.0, 0
      for s in [1, 4, 10]:
        sess.run(apply_op, feed_dict={step: s})
        w, last = (1 - LR) * w + LR * (s - last), s
      self.assertAllClose(sess.run(table.lookup(one)), [[w]])
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "global_step >= 0"):
        sess.run(apply_op, feed_dict={step: -1})


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
