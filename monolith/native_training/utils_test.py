import os
from unittest import mock

import tensorflow as tf

from monolith.native_training import utils


class UtilsTest(tf.test.TestCase):

  def test_ps_device(self):
    self.assertEqual(utils.PS_JOB_NAME, "ps")
    self.assertEqual(utils.ps_device(3), "/job:ps/task:3/device:CPU:0")

  def test_metric_prefix(self):
    with mock.patch.dict(os.environ, {}, clear=False):
      os.environ.pop("MONOLITH_METRIC_PREFIX", None)
      self.assertEqual(utils.get_metric_prefix(), "monolith.training")
      utils.set_metric_prefix("my.prefix")
      self.assertEqual(utils.get_metric_prefix(), "my.prefix")
    self.assertNotEqual(os.environ.get("MONOLITH_METRIC_PREFIX"), "my.prefix")

  def test_file_names(self):
    self.assertEqual(utils.get_meta_graph_file_name("/m"), "/m/meta_graph_for_debugging.pb")
    self.assertEqual(utils.get_debugging_info_file_name("/m"), "/m/debugging_info.pb")
    self.assertEqual(utils.to_list(1), [1])
    self.assertEqual(utils.to_list([1]), [1])

  def test_collections(self):
    with tf.Graph().as_default():
      self.assertIsNone(utils.get_collection("c"))
      for value in (False, 0, "", 1.5):
        utils.add_to_collections("c", value)
      utils.add_to_collections("c", [])  # falsy non-scalar: skipped
      utils.add_to_collections(["c", "d"], [1])
      self.assertEqual(utils.get_collection("c"), [False, 0, "", 1.5, [1]])
      self.assertEqual(utils.get_collection("d"), [[1]])

  def test_check_ops_dependence(self):
    with tf.Graph().as_default():
      a = tf.constant(1, name="a")
      b = tf.identity(a, name="b")
      tf.constant(2, name="c")
      utils.check_ops_dependence("b", "c")
      with self.assertRaisesRegex(
          Exception, r"^Checking ops dependence, the ops \[b\] depend on ops \[a\], which may "
          r"cause ops \[a\] to be run twice.$"):
        utils.check_ops_dependence(b.op.name, ["a", "c"])


if __name__ == "__main__":
  tf.test.main()
