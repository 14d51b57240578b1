import collections
import glob
import os
import struct

import tensorflow as tf

from idl.matrix.proto import example_pb2
from monolith.native_training.hooks import feature_engineering_hooks

_Config = collections.namedtuple("_Config", ["model_dir", "index"])

_FIDS = [[1, 2], [3], [], [4, 5, 6], [(1 << 63) + 7], [8]]  # the 5th fid has the high bit set
_WEIGHTS = [[0.5, 1.5], [2.5], [], [3.0], [4.0, 4.5], [5.0]]
_DENSE_IDS = [[10, 11], [12, 13], [14, 15], [16, 17], [18, 19], [20, 21]]
_LABELS = [0.0, 1.0, 0.25, 1.0, 0.0, 0.5]


def _read_batches(path):
  batches = []
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos < len(data):
    lagrange, size = struct.unpack_from("<QQ", data, pos)
    pos += 16
    example_batch = example_pb2.ExampleBatch.FromString(data[pos:pos + size])
    pos += size
    batches.append((lagrange, example_batch))
  return batches


def _feature_values(example_batch, name):
  for named in example_batch.named_feature_list:
    if named.name == name:
      assert named.type == example_pb2.INDIVIDUAL
      return [list(f.float_list.value) if f.HasField("float_list") else list(
          f.fid_v2_list.value) for f in named.feature]
  raise KeyError(name)


class FeatureEngineeringSaveHookTest(tf.test.TestCase):

  def _run(self, index, steps, cap):
    model_dir = os.path.join(self.get_temp_dir(), "{}_{}".format(self._testMethodName, index))
    ds = tf.data.Dataset.from_tensor_slices({
        "fid": tf.ragged.constant([[v - (1 << 64) if v >= 1 << 63 else v
                                    for v in row]
                                   for row in _FIDS],
                                  dtype=tf.int64),
        "weight": tf.ragged.constant(_WEIGHTS, dtype=tf.float32),
        "dense_ids": tf.constant(_DENSE_IDS, dtype=tf.int64),
        "label": tf.constant(_LABELS, dtype=tf.float32),
    }).batch(2)
    it = tf.compat.v1.data.make_initializable_iterator(ds)
    nxt = it.get_next()
    hook = feature_engineering_hooks.FeatureEngineeringSaveHook(_Config(model_dir, index),
                                                                nxt,
                                                                cap=cap)
    step_op = tf.no_op()
    with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
      sess.run(it.initializer)  # step 1: nothing fetched
      for _ in range(steps):
        sess.run(step_op)
    return model_dir

  def test_dump_reads_back(self):
    model_dir = self._run(index=0, steps=3, cap=2)
    files = glob.glob(os.path.join(model_dir, "features", "*.pb"))
    self.assertLen(files, 2)  # one when the buffer reached cap=2, one at end
    for f in files:
      self.assertRegex(os.path.basename(f), r"^chief_[0-9a-f-]{36}\.pb$")
    batches = []
    for f in sorted(files, key=os.path.getmtime):
      batches.extend(_read_batches(f))
    self.assertLen(batches, 3)
    got = {"fid": [], "weight": [], "dense_ids": [], "label": []}
    for lagrange, eb in batches:
      self.assertEqual(lagrange, 0)
      self.assertEqual(eb.batch_size, 2)
      self.assertCountEqual([n.name for n in eb.named_feature_list], got.keys())
      for name in got:
        got[name].extend(_feature_values(eb, name))
    # Files may be listed in either order; compare rows as multisets (fid row, its weights).
    self.assertCountEqual(list(zip(map(tuple, got["fid"]), map(tuple, got["weight"]))),
                          list(zip(map(tuple, _FIDS), map(tuple, _WEIGHTS))))
    rows = sorted(zip(map(tuple, got["dense_ids"]), got["label"]))
    self.assertEqual(rows, sorted(zip(map(tuple, _DENSE_IDS), [[l] for l in _LABELS])))
    # Dense float values are stored as floats, int values as fids.
    self.assertTrue(
        all(f.HasField("float_list") for n in batches[0][1].named_feature_list
            if n.name in ("weight", "label") for f in n.feature if f.float_list.value))
    self.assertTrue(
        all(not f.HasField("float_list") for n in batches[0][1].named_feature_list
            if n.name in ("fid", "dense_ids") for f in n.feature))

  def test_worker_file_name(self):
    model_dir = self._run(index=3, steps=1, cap=2)
    files = glob.glob(os.path.join(model_dir, "features", "*.pb"))
    self.assertLen(files, 1)  # written at end with the one buffered batch
    self.assertRegex(os.path.basename(files[0]), r"^worker3_[0-9a-f-]{36}\.pb$")
    (lagrange, eb), = _read_batches(files[0])
    self.assertEqual(_feature_values(eb, "fid"), _FIDS[:2])

  def test_nothing_buffered_writes_no_data(self):
    model_dir = self._run(index=0, steps=0, cap=2)
    sizes = [os.path.getsize(f) for f in glob.glob(os.path.join(model_dir, "features", "*"))]
    self.assertEqual(sum(sizes), 0)


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
