import os
import tempfile
import unittest

from tensorflow.python.training import monitored_session
import tensorflow as tf

from monolith import utils


class UtilsTest(unittest.TestCase):

  def test_find_main_under_bazel(self):
    base = utils.find_main()
    self.assertEqual(os.path.basename(base), "__main__")
    self.assertTrue(os.path.isdir(os.path.join(base, "monolith")))

  def test_get_libops_path(self):
    self.assertEqual(utils.get_libops_path("monolith/x.so"),
                     os.path.join(utils.find_main(), "monolith/x.so"))

  def test_enable_monkey_patch(self):
    utils.enable_monkey_patch()
    self.assertEqual(monitored_session._PREEMPTION_ERRORS, (tf.errors.AbortedError,))

  def test_copy_recursively(self):
    with tempfile.TemporaryDirectory() as tmp:
      src = os.path.join(tmp, "src")
      os.makedirs(os.path.join(src, "sub"))
      with open(os.path.join(src, "a.txt"), "w") as f:
        f.write("a")
      with open(os.path.join(src, "sub", "b.txt"), "w") as f:
        f.write("b")
      dst = os.path.join(tmp, "dst")
      os.makedirs(dst)
      with open(os.path.join(dst, "stale.txt"), "w") as f:
        f.write("old")
      utils.CopyRecursively(src, dst, max_workers=2)
      self.assertEqual(sorted(os.listdir(dst)), ["a.txt", "sub"])
      with open(os.path.join(dst, "sub", "b.txt")) as f:
        self.assertEqual(f.read(), "b")

  def test_copy_missing(self):
    with tempfile.TemporaryDirectory() as tmp:
      missing = os.path.join(tmp, "missing")
      utils.CopyRecursively(missing, os.path.join(tmp, "dst"))  # skipped silently
      self.assertFalse(os.path.exists(os.path.join(tmp, "dst")))
      with self.assertRaisesRegex(ValueError, "doesn't exist!"):
        utils.CopyRecursively(missing, os.path.join(tmp, "dst"), skip_nonexist=False)
      with self.assertRaises(tf.errors.NotFoundError):
        utils.CopyFile(missing, os.path.join(tmp, "x"), skip_nonexist=False)


if __name__ == "__main__":
  unittest.main()
