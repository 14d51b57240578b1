"""Checkpoint saving: the Monolith checkpoint-state file, a save timer that honours "tide"
(off-peak) hours, and the saver hook that skips the session-start save and can be triggered on
demand from other threads."""

import datetime
import os
import threading
import time
import traceback
from typing import List, Optional

from absl import logging
from google.protobuf import text_format
import tensorflow as tf

from monolith.native_training import monolith_checkpoint_state_pb2
from monolith.native_training import utils
from monolith.native_training.metric import cli

MONOLITH_CKPT_STATE_FILE_NAME = "monolith_checkpoint"

_SAVE_ATTEMPTS = 2


def _state_path(checkpoint_dir: str, filename: Optional[str]) -> str:
  return os.path.join(checkpoint_dir, filename or MONOLITH_CKPT_STATE_FILE_NAME)


def get_monolith_checkpoint_state(checkpoint_dir: str,
                                  filename: Optional[str] = None,
                                  remove_invalid_path: bool = False):
  """The parsed MonolithCheckpointState, or None when it is missing or unreadable."""
  path = _state_path(checkpoint_dir, filename)
  if not tf.io.gfile.exists(path):
    return None
  try:
    state = text_format.Parse(
        tf.io.gfile.GFile(path).read(), monolith_checkpoint_state_pb2.MonolithCheckpointState())
  except (tf.errors.OpError, text_format.ParseError) as e:
    logging.warning("%s: %s", type(e).__name__, e)
    logging.warning("%s: Checkpoint ignored", path)
    return None
  if remove_invalid_path:
    valid = []
    for p in state.exempt_model_checkpoint_paths:
      if not os.path.isabs(p):
        p = os.path.join(checkpoint_dir, p)
      if tf.compat.v1.train.checkpoint_exists(p):
        valid.append(p)
      else:
        logging.warning("%s not exists in file system, remove from monolith_checkpoint", p)
    del state.exempt_model_checkpoint_paths[:]
    state.exempt_model_checkpoint_paths.extend(valid)
  return state


def write_monolith_checkpoint_state(checkpoint_dir: str, state, filename: Optional[str] = None):
  tf.io.gfile.makedirs(checkpoint_dir)
  path = _state_path(checkpoint_dir, filename)
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text_format.MessageToString(state))
  tf.io.gfile.rename(tmp, path, overwrite=True)


_latest_state_cache = {}
_latest_state_lock = threading.Lock()


def get_latest_checkpoint_state(checkpoint_dir: str, global_step_value: int):
  """tf.train.get_checkpoint_state, cached per directory until a newer step is asked for."""
  with _latest_state_lock:
    cached = _latest_state_cache.get(checkpoint_dir)
    if cached is None or cached[1] is None or cached[0] < global_step_value:
      cached = (global_step_value, tf.train.get_checkpoint_state(checkpoint_dir))
      _latest_state_cache[checkpoint_dir] = cached
    return cached[1]


class SaveHelper(object):
  """Names of the checkpoints under one `<dir>/<basename>`."""

  def __init__(self, basename: str):
    self._basename = basename

  def get_ckpt_prefix(self, step: int) -> str:
    return "{}-{}".format(self._basename, step)

  @classmethod
  def get_ckpt_asset_dir(cls, prefix: str) -> str:
    return prefix + ".assets/"

  @staticmethod
  def get_global_step_value(prefix: str) -> int:
    if "-" not in prefix:
      return 0
    return int(prefix.rsplit("-", 1)[1])

  def get_existing_checkpoint_steps(self) -> set:
    state = tf.train.get_checkpoint_state(os.path.dirname(self._basename))
    if state is None:
      return set()
    return {self.get_global_step_value(p) for p in state.all_model_checkpoint_paths}


def latest_checkpoint_asset_dir(basename: str, restoring: str):
  """(prefix, asset dir) of the newest checkpoint next to `basename`, or (None, None) after
  logging that `restoring` (what a restorer listener restores) starts empty."""
  ckpt = tf.train.latest_checkpoint(os.path.dirname(basename))
  if ckpt is None:
    logging.info("No checkpoint in %s; %s start empty.", os.path.dirname(basename), restoring)
    return None, None
  return ckpt, SaveHelper.get_ckpt_asset_dir(ckpt)


def tide_available_now(start_hour: int, start_minute: int, end_hour: int,
                       end_minute: int) -> bool:
  """Whether the current UTC time is inside the tide window. Upstream quirk kept: when start is
  not before end, the window is "before start or from end on"."""
  now = datetime.datetime.utcnow()
  now_minutes = now.hour * 60 + now.minute
  start = start_hour * 60 + (start_minute or 0)
  end = end_hour * 60 + (end_minute or 0)
  if start < end:
    return start <= now_minutes < end
  return now_minutes < start or now_minutes >= end


class SecondOrStepTimerWithTideSetting(tf.compat.v1.train.SecondOrStepTimer):
  """A SecondOrStepTimer that can be disabled and that, outside the tide window, triggers every
  `tide_every_secs` instead."""

  def __init__(self,
               every_secs=None,
               every_steps=None,
               tide_start_hour=None,
               tide_start_minute=None,
               tide_end_hour=None,
               tide_end_minute=None,
               tide_every_secs=None,
               save_helper: Optional[SaveHelper] = None):
    super().__init__(every_secs=every_secs, every_steps=every_steps)
    self._tide_start_hour = tide_start_hour
    self._tide_start_minute = tide_start_minute
    self._tide_end_hour = tide_end_hour
    self._tide_end_minute = tide_end_minute
    self._tide_every_secs = tide_every_secs
    self._save_helper = save_helper
    self._enabled = True

  def enable(self):
    self._enabled = True

  def disable(self):
    self._enabled = False

  def _tide_configured(self) -> bool:
    return (self._tide_start_hour is not None and self._tide_end_hour is not None and
            self._tide_every_secs is not None)

  def should_trigger_for_step(self, step):
    if not self._enabled:
      return False
    if self._last_triggered_step is None:
      return True
    if self._last_triggered_step == step:
      return False
    if self._tide_configured() and not tide_available_now(
        self._tide_start_hour, self._tide_start_minute, self._tide_end_hour,
        self._tide_end_minute):
      return time.time() >= self._last_triggered_time + self._tide_every_secs
    return super().should_trigger_for_step(step)


class NoFirstSaveCheckpointSaverHook(tf.compat.v1.train.CheckpointSaverHook):
  """CheckpointSaverHook that skips the save at session creation, retries a failed save once,
  keeps the Monolith checkpoint state up to date, and supports `trigger_save` from any thread."""

  _has_dense_only = False
  _in_model_dump_mode = False
  _last_triggered_step = 0

  def __init__(self,
               checkpoint_dir,
               save_secs=None,
               save_steps=None,
               saver=None,
               checkpoint_basename="model.ckpt",
               scaffold=None,
               listeners=None,
               save_graph_def=True,
               tide_start_hour=None,
               tide_start_minute=None,
               tide_end_hour=None,
               tide_end_minute=None,
               tide_save_secs=None,
               ignore_save_errors=False,
               is_dense_only=False,
               use_native_multi_hash_table=False,
               no_first_save=True,
               guard_saver_listeners: Optional[List[
                   tf.compat.v1.train.CheckpointSaverListener]] = None):
    super().__init__(checkpoint_dir,
                     save_secs=save_secs,
                     save_steps=save_steps,
                     saver=saver,
                     checkpoint_basename=checkpoint_basename,
                     scaffold=scaffold,
                     listeners=listeners,
                     save_graph_def=save_graph_def)
    self._helper = SaveHelper(os.path.join(checkpoint_dir, checkpoint_basename))
    self._timer = SecondOrStepTimerWithTideSetting(every_secs=save_secs,
                                                   every_steps=save_steps,
                                                   tide_start_hour=tide_start_hour,
                                                   tide_start_minute=tide_start_minute,
                                                   tide_end_hour=tide_end_hour,
                                                   tide_end_minute=tide_end_minute,
                                                   tide_every_secs=tide_save_secs,
                                                   save_helper=self._helper)
    self._ignore_save_errors = ignore_save_errors
    self._is_dense_only = is_dense_only
    self._use_native_multi_hash_table = use_native_multi_hash_table
    self._no_first_save = no_first_save
    self._guard_saver_listeners = guard_saver_listeners or []
    self._mcli = cli.get_cli(utils.get_metric_prefix())
    # after_run (training thread) and trigger_save (e.g. an RPC thread) may save concurrently.
    self._lock = threading.RLock()

  @property
  def timer(self) -> SecondOrStepTimerWithTideSetting:
    return self._timer

  def after_create_session(self, session, coord):
    super().after_create_session(session, coord)
    if self._save_graph_def:
      saver = self._get_saver()
      if saver is not None:
        saver.export_meta_graph(utils.get_meta_graph_file_name(self._checkpoint_dir),
                                as_text=False)
      self._update_monolith_state(create_only=True)

  def after_run(self, run_context, run_values):
    with self._lock:
      super().after_run(run_context, run_values)

  def trigger_save(self, session, ignore_save_errors=False):
    """Writes a checkpoint of the current global step before returning."""
    with session.graph.as_default(), self._lock:
      self._timer.reset()
      old_ignore = self._ignore_save_errors
      self._ignore_save_errors = ignore_save_errors
      try:
        run_context = tf.compat.v1.train.SessionRunContext(original_args=None, session=session)
        super().after_run(run_context, tf.compat.v1.train.SessionRunValues(
            results=0, options=None, run_metadata=None))
      finally:
        self._ignore_save_errors = old_ignore

  def end(self, session):
    step = session.run(self._global_step_tensor)
    if self._is_dense_only:
      return
    if self._has_dense_only or self._in_model_dump_mode:
      self._timer.update_last_triggered_step(step)
      self._base_save(session, step)
      for l in self._listeners:
        l.end(session, step)
    else:
      super().end(session)

  def _base_save(self, session, step):
    return super()._save(session, step)

  def _save(self, session, step):
    if self._no_first_save:
      self._no_first_save = False
      return False
    if self._is_dense_only:
      if step == self._last_triggered_step:
        return False
      tags = {"mode": "dense_only"}
    else:
      tags = {"mode": "full"}
    for l in self._guard_saver_listeners:
      try:
        l.before_save(session, step)
      except Exception:  # pylint: disable=broad-except
        logging.error("Guard listener %s failed in before_save:\n%s", l, traceback.format_exc())
    try:
      last_error = None
      for _ in range(_SAVE_ATTEMPTS):
        start = time.time()
        try:
          should_stop = self._base_save(session, step)
        except tf.errors.OpError as e:
          last_error = e
          self._mcli.emit_counter("save_checkpoint_failed", 1, tags)
          logging.error("Failed to save, retrying ...\n%s", traceback.format_exc())
          continue
        self._last_triggered_step = step
        if self._save_graph_def:
          self._update_monolith_state(create_only=False)
        elapsed = time.time() - start
        logging.info("saving checkpoint took %.3f seconds", elapsed)
        self._mcli.emit_counter("save_checkpoint", 1, tags)
        self._mcli.emit_timer("save_checkpoint_time", elapsed, tags)
        return should_stop
    finally:
      for l in reversed(self._guard_saver_listeners):
        try:
          l.after_save(session, step)
        except Exception:  # pylint: disable=broad-except
          logging.error("Guard listener %s failed in after_save:\n%s", l, traceback.format_exc())
    if self._ignore_save_errors:
      return False
    raise last_error

  def _update_monolith_state(self, create_only: bool):
    state = get_monolith_checkpoint_state(self._checkpoint_dir, remove_invalid_path=True)
    if state is None:
      state = monolith_checkpoint_state_pb2.MonolithCheckpointState()
      state.builtin_hash_table_type = (
          monolith_checkpoint_state_pb2.MonolithCheckpointState.MULTI_CUCKOO_HASH_MAP
          if self._use_native_multi_hash_table else
          monolith_checkpoint_state_pb2.MonolithCheckpointState.CUCKOO_HASH_MAP)
      logging.info("Create new monolith ckpt state")
    elif create_only:
      return
    else:
      logging.info("Update new monolith ckpt state")
    state.last_checkpoint_save_timestamp = int(time.time())
    write_monolith_checkpoint_state(self._checkpoint_dir, state)
    logging.info("monolith ckpt state saved")
