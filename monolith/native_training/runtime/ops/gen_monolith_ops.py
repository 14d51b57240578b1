"""Monolith's custom ops: loads the one ops library and exposes its generated wrappers.

`gen_monolith_ops.monolith_writable_file(filename=...)` (snake_case) and the keyword-only raw op
`gen_monolith_ops.MonolithWritableFile(...)` both exist, as for TF's own gen_*_ops modules. The
library is found through monolith.utils.get_libops_path, i.e. in Bazel runfiles or next to the
installed `monolith` package."""
import os

import tensorflow as tf

from monolith import utils

LIBRARY_NAME = "monolith/native_training/runtime/ops/libtfkernel_monolith_ops_for_load.so"


def _load_library():
  path = utils.get_libops_path(LIBRARY_NAME)
  if not os.path.exists(path):
    raise ImportError(
        "Monolith ops library not found at {}: build it with "
        "`bazel build //monolith/native_training/runtime/ops:libtfkernel_monolith_ops_for_load.so` "
        "and run under Bazel, or install the monolith wheel".format(path))
  return tf.load_op_library(path)


_library = _load_library()
LIBRARY_PATH = _library.__file__ if hasattr(_library, "__file__") else utils.get_libops_path(
    LIBRARY_NAME)
globals().update(
    {name: getattr(_library, name) for name in dir(_library) if not name.startswith("_")})
