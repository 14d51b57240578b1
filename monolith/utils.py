"""Monolith utilities shared by training and serving code."""
import concurrent.futures
import os
import sys
from typing import List, Tuple

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from monolith.path_utils import find_main, get_libops_path  # pylint: disable=unused-import


def enable_monkey_patch():
  """Makes MonitoredSession treat only AbortedError as a preemption: upstream TF also recovers
  from UnavailableError, which hides dead parameter servers behind endless session restarts."""
  name = "tensorflow.python.training.monitored_session"
  module = sys.modules.get(name)
  if module is None:
    module = __import__(name, fromlist=["_PREEMPTION_ERRORS"])
  module._PREEMPTION_ERRORS = (tf.errors.AbortedError,)  # pylint: disable=protected-access


def CopyFile(src: str, dst: str, overwrite: bool = True, skip_nonexist: bool = True,
             max_retries: int = 5):
  """tf.io.gfile.copy with retries; a missing `src` is retried and finally ignored when
  `skip_nonexist` (upstream behaviour: the file may still be uploading), else raised."""
  for attempt in range(max_retries):
    try:
      tf.io.gfile.copy(src, dst, overwrite=overwrite)
      return
    except tf.errors.NotFoundError:
      if not skip_nonexist:
        raise
      logging.warning("CopyFile: %s not found (attempt %d/%d)", src, attempt + 1, max_retries)


def CopyRecursively(src: str, dst: str, max_workers: int = 1, skip_nonexist: bool = True,
                    max_retries: int = 5):
  """Copies the tree `src` to `dst` through tf.io.gfile; an existing `dst` tree is replaced."""
  if not tf.io.gfile.exists(src):
    if skip_nonexist:
      return
    raise ValueError("{} doesn't exist!".format(src))
  if not tf.io.gfile.isdir(src):
    CopyFile(src, dst, skip_nonexist=skip_nonexist, max_retries=max_retries)
    return
  if tf.io.gfile.exists(dst):
    tf.io.gfile.rmtree(dst)
  copies: List[Tuple[str, str]] = []
  for dirpath, dirnames, filenames in tf.io.gfile.walk(src):
    target_dir = os.path.join(dst, os.path.relpath(dirpath, src))
    tf.io.gfile.makedirs(target_dir)
    for dirname in dirnames:
      tf.io.gfile.makedirs(os.path.join(target_dir, dirname))
    copies.extend((os.path.join(dirpath, f), os.path.join(target_dir, f)) for f in filenames)
  copy = lambda pair: CopyFile(pair[0], pair[1], skip_nonexist=skip_nonexist,
                               max_retries=max_retries)
  if max_workers > 1:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max_workers) as pool:
      list(pool.map(copy, copies))
  else:
    for pair in copies:
      copy(pair)


def run_cli(main, *module_names: str):
  """app.run(main) for a command that may be a console script (`monolith-agent`, ...).

  absl's `--help` lists the key flags of the script file in sys.argv[0]; for an installed console
  script that is the pip-generated launcher, which defines none. Registering the key flags of
  `module_names` (the command's module and the modules whose flags it shares) for it makes `--help`
  list the command's real flags.
  """
  for module_name in module_names:
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)
