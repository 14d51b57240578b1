"""Copies the newest version of a (rough-sort) model from a p2p download dir to a local dir.

Source layout: `<source>/<model>@<version>/<model>/<sub_model>/<version>/...` plus a marker
`<source>/<model>@<version>.write.done` once the download is complete. Destination:
`<receive>/<model>/<sub_model>/<version>`, where the model server picks it up. Each version is
copied to `<version>-temp` and renamed, so a model server (which only loads numeric version
directories) never sees a partial copy.
"""

import os
import shutil
import threading
import time
from typing import Dict, List, Optional, Tuple

from absl import logging

WRITE_DONE = '.write.done'
READ_LOCK = '.read.lock'
_TEMP_SUFFIX = '-temp'
_METRIC_PREFIX = 'data.monolith_serving.online'


class ModelManager:

  def __init__(self,
               model_name: Optional[str],
               source_path: Optional[str],
               receive_path: Optional[str],
               use_metrics: bool = True):
    self._model_name = model_name
    self._source_path = source_path
    self._receive_path = receive_path
    self._use_metrics = use_metrics
    self._wait_timeout = 1200
    self._loop_interval = 30
    self._remain_version_num = 5
    self._lock_files: List[str] = []
    self._models: Dict[str, Tuple[str, List[str]]] = {}  # model -> (version, copied dirs)
    self._copied: Dict[str, List[Tuple[str, List[str]]]] = {}  # model -> versions, oldest 1st
    self._latest_models: Dict[str, Tuple[str, float]] = {}  # model -> (version, update time)
    self._exist = threading.Event()  # upstream's name for "stop requested"
    self._thread: Optional[threading.Thread] = None
    self._metrics = None

  def start(self) -> bool:
    try:
      return self._start()
    except Exception:  # pylint: disable=broad-except
      logging.exception('model manager failed to start')
      return False

  def _start(self) -> bool:
    if self._model_name is None:
      logging.info('no rough sort model configured, model manager is idle')
      return True
    self.delete(self._receive_path)
    if not self.wait_for_download():
      logging.error('no complete download of %s in %s after %d s', self._model_name,
                    self._source_path, self._wait_timeout)
      return False
    deadline = time.time() + self._wait_timeout
    while not self.loop_once():
      if time.time() > deadline:
        logging.error('copying %s did not succeed in %d s', self._model_name, self._wait_timeout)
        return False
      time.sleep(1)
    self.remove_read_lock()
    self._thread = threading.Thread(target=self.run, daemon=True)
    self._thread.start()
    return True

  def stop(self):
    self._exist.set()
    if self._thread is not None:
      self._thread.join()

  def run(self):
    while not self._exist.is_set():
      try:
        try:
          self.loop_once()
        finally:
          # A failed pass must not leave the source versions read-locked until the next one.
          self.remove_read_lock()
        if self._use_metrics:
          self.check_model_update_time()
        self.remove_old_file()
      except Exception:  # pylint: disable=broad-except
        logging.exception('model manager loop failed')
      self._exist.wait(self._loop_interval)

  # ---- source side ---------------------------------------------------------------------------

  def create_read_lock(self, path: str):
    lock = path + READ_LOCK
    with open(lock, 'a'):
      pass
    self._lock_files.append(lock)

  def remove_read_lock(self):
    for lock in self._lock_files:
      self.delete(lock)
    self._lock_files = []
    if self._source_path and os.path.isdir(self._source_path):
      for name in os.listdir(self._source_path):
        if name.endswith(READ_LOCK):
          # Upstream called os.join here (an AttributeError); the intent is the source root.
          self.delete(os.path.join(self._source_path, name))

  def wait_for_download(self) -> bool:
    deadline = time.time() + self._wait_timeout
    while True:
      if os.path.isdir(self._source_path) and any(
          name.startswith(self._model_name) and name.endswith(WRITE_DONE)
          for name in os.listdir(self._source_path)):
        return True
      if time.time() > deadline:
        return False
      time.sleep(min(10, max(self._wait_timeout / 10, 0.1)))

  @staticmethod
  def get_version_data(real_path: str, version: str) -> List[Tuple[str, str]]:
    data = []
    for sub_model in sorted(os.listdir(real_path)):
      full_path = os.path.join(real_path, sub_model, version)
      if os.path.isdir(full_path):
        data.append((os.path.join(sub_model, version), full_path))
    return data

  def get_source_data(self) -> Dict[str, Tuple[str, List[Tuple[str, str]], str]]:
    root = self._source_path
    names = os.listdir(root)
    done = {name for name in names if name.endswith(WRITE_DONE)}
    result = {}
    for name in names:
      path = os.path.join(root, name)
      if '@' not in name or not os.path.isdir(path):
        continue
      model_name, version = name.rsplit('@', 1)
      if model_name != self._model_name:
        continue
      self.create_read_lock(path)
      if name + WRITE_DONE not in done:
        continue  # still downloading
      real_path = os.path.join(path, model_name)
      if not os.path.isdir(real_path):
        logging.error('%s has no %s directory', path, model_name)
        continue
      old = result.get(model_name)
      # Versions compare as strings, as upstream (timestamps of equal length).
      if old is None or old[0] < version:
        result[model_name] = (version, self.get_version_data(real_path, version), real_path)
    return result

  # ---- destination side ----------------------------------------------------------------------

  def copy_model(self, model_name: str, version: str,
                 model_data: List[Tuple[str, str]]) -> Tuple[bool, List[str]]:
    dst_files, temps = [], []
    try:
      for sub_path, src_path in model_data:
        dst_file = os.path.join(self._receive_path, model_name, sub_path)
        temp = dst_file + _TEMP_SUFFIX
        if not os.path.exists(dst_file):
          # A leftover temp dir is an interrupted copy: it may be partial, so copy again
          # (upstream renamed it into place, exposing a half-copied version).
          self.delete(temp)
          temps.append(temp)
          shutil.copytree(src_path, temp)
        dst_files.append(dst_file)
      for temp in temps:
        os.rename(temp, temp[:-len(_TEMP_SUFFIX)])
    except Exception as e:  # pylint: disable=broad-except
      logging.error('copying %s@%s failed: %s', model_name, version, e)
      for temp in temps:
        self.delete(temp)
      return False, []
    if not dst_files or len(dst_files) != len(model_data):
      return False, []
    return True, dst_files

  def loop_once(self) -> bool:
    """Copies a newer complete version if there is one; True when the newest is in place."""
    for model_name, (version, version_data, _) in self.get_source_data().items():
      old = self._models.get(model_name)
      if old is not None and old[0] >= version:
        continue
      ok, dst_files = self.copy_model(model_name, version, version_data)
      if not ok:
        return False
      self._models[model_name] = (version, dst_files)
      self._copied.setdefault(model_name, []).append((version, dst_files))
      self._latest_models[model_name] = (version, time.time())
      logging.info('copied %s@%s to %s', model_name, version, dst_files)
    return self._model_name in self._models

  def remove_old_file(self):
    for model_name, versions in self._copied.items():
      while len(versions) > self._remain_version_num:
        _, paths = versions.pop(0)
        for path in paths:
          self.delete(path)

  def check_model_update_time(self):
    if self._metrics is None:
      from monolith.native_training.metric import cli
      self._metrics = cli.get_cli(_METRIC_PREFIX)
    now = time.time()
    latest = self._latest_models.get(self._model_name)
    tags = {'model_name': self._model_name}
    if latest is None:
      self._metrics.emit_counter('loop_once_failed', 1, tags)
    else:
      version, update_time = latest
      self._metrics.emit_store('version.delay', now - int(version), tags)
      self._metrics.emit_store('update.delay', now - update_time, tags)
    self._metrics.flush()

  @staticmethod
  def delete(path: Optional[str]):
    if not path or not os.path.lexists(path):
      return
    try:
      if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
    except OSError as e:
      logging.error('cannot delete %s: %s', path, e)
