import os

from google.protobuf import text_format
import tensorflow as tf

from monolith.native_training import hash_table_ops
from monolith.native_training.hooks import ckpt_info
from monolith.native_training.proto import ckpt_info_pb2


def _read_info(path):
  with open(path) as f:
    return text_format.Parse(f.read(), ckpt_info_pb2.CkptInfo())


class FidCountListener(tf.test.TestCase):

  def test_basic(self):
    model_dir = os.path.join(self.get_temp_dir(), "basic")
    table = hash_table_ops.test_hash_table(1)
    add_op = table.assign(tf.constant([1], tf.int64), [[0.0]]).as_op()
    listener = ckpt_info.FidSlotCountSaverListener(model_dir)
    with self.session() as sess:
      sess.run(add_op)
      listener.before_save(sess, 0)
    info = _read_info(os.path.join(model_dir, "ckpt.info-0"))
    self.assertEqual(dict(info.slot_counts), {0: 1})

  def test_counts_by_v2_slot_and_recounts_each_save(self):
    model_dir = os.path.join(self.get_temp_dir(), "slots")
    table = hash_table_ops.test_hash_table(2)
    fids = [(3 << 48) | 1, (3 << 48) | 2, (5 << 48) | 7, 9]
    add_op = table.assign(tf.constant(fids, tf.int64), [[0.0, 0.0]] * 4).as_op()
    more_op = table.assign(tf.constant([(5 << 48) | 8], tf.int64), [[1.0, 1.0]]).as_op()
    listener = ckpt_info.FidSlotCountSaverListener(model_dir)
    with self.session() as sess:
      sess.run(add_op)
      listener.before_save(sess, 10)
      sess.run(more_op)
      listener.before_save(sess, 20)
    self.assertEqual(dict(_read_info(os.path.join(model_dir, "ckpt.info-10")).slot_counts), {
        0: 1,
        3: 2,
        5: 1
    })
    # Counters are zeroed before each count: the second file is not cumulative.
    with open(os.path.join(model_dir, "ckpt.info-20")) as f:
      text = f.read()
    self.assertEqual(
        text, "slot_counts {\n  key: 0\n  value: 1\n}\nslot_counts {\n  key: 3\n  value: 2\n}\n"
        "slot_counts {\n  key: 5\n  value: 2\n}\n")

  def test_no_tables(self):
    with self.assertRaisesRegex(ValueError, "Unable to find hash tables"):
      ckpt_info.FidSlotCountSaverListener(self.get_temp_dir())


if __name__ == "__main__":
  tf.compat.v1.disable_eager_execution()
  tf.test.main()
