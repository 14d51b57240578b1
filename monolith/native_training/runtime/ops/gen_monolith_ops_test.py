import os
import subprocess
import sys
import unittest

import tensorflow as tf

from monolith.native_training.runtime.ops import gen_monolith_ops


class GenMonolithOpsTest(unittest.TestCase):

  def test_wrappers_are_exposed(self):
    for name in ("monolith_writable_file", "monolith_writable_file_append",
                 "monolith_entry_dump_file_append", "monolith_writable_file_close",
                 "MonolithWritableFile", "MonolithWritableFileClose"):
      self.assertTrue(callable(getattr(gen_monolith_ops, name)), name)

  def test_library_loads_in_a_plain_interpreter(self):
    # A fresh python (no Bazel test wrapper, no monolith import) can load the .so directly.
    path = os.path.realpath(gen_monolith_ops.LIBRARY_PATH)
    code = ("import tensorflow as tf; lib = tf.load_op_library({!r}); "
            "print(lib.OP_LIST.op[0].name if hasattr(lib, 'OP_LIST') else "
            "[n for n in dir(lib) if n.startswith('Monolith')][0])").format(path)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout
    self.assertIn("Monolith", output)

  def test_registered_op_signature(self):
    graph = tf.Graph()
    with graph.as_default():
      handle = gen_monolith_ops.monolith_writable_file(filename="/tmp/unused")
    self.assertEqual(handle.dtype, tf.resource)
    self.assertEqual(handle.op.type, "MonolithWritableFile")
    self.assertEqual(handle.op.get_attr("filename"), b"/tmp/unused")
    self.assertEqual(handle.op.get_attr("container"), b"")
    self.assertEqual(handle.op.get_attr("shared_name"), b"")


if __name__ == "__main__":
  unittest.main()
