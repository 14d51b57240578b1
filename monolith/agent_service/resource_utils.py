"""Resource figures the agent reports and model-size estimates the scheduler uses.

The cgroup (v1) readers match the containers upstream ran in; the `_v2` variants use psutil and
work anywhere.
"""

import os
import re
import subprocess
import time
from typing import Dict, Optional, Tuple, Union

from absl import logging
import psutil
import tensorflow as tf

from monolith.agent_service.data_def import SubModelName, SubModelSize, VersionPath
from monolith.native_training.model_export import export_state_utils

_HADOOP_BIN = os.environ.get('HADOOP_BIN', 'hadoop')
# Hash-table dump files in `<ckpt>.assets`: MonolithHashTable_<table>_<ps index>-<shard>-of-<n>.
ROW = re.compile(r'^MonolithHashTable_\w+?_(?P<index>\d+)-\d+-of-\d+$')


def _get_pod_cgroup_path() -> Optional[str]:
  try:
    with open('/proc/1/cgroup') as fp:
      for line in fp:
        if ':memory:' in line:
          return line.strip().split(':memory:')[-1].strip('/')
  except Exception as e:
    logging.info('no memory cgroup: %s', e)
  return None


_POD_CGROUP_PATH = _get_pod_cgroup_path()


def _cgroup_file(controller: str, name: str) -> str:
  return os.path.join('/sys/fs/cgroup', controller, _POD_CGROUP_PATH or '', name)


def _read_int(path: str) -> int:
  with open(path) as fp:
    return int(fp.read().strip())


def exists(dirname: str) -> bool:
  return tf.io.gfile.isdir(dirname) or tf.io.gfile.exists(dirname)


def open_hdfs(fname: Union[str, list, tuple]):
  """Yields the non-empty lines of `hadoop fs -text` over one or more paths (3 tries)."""
  cmd = [_HADOOP_BIN, 'fs', '-text']
  cmd.extend([fname] if isinstance(fname, str) else list(fname))
  output = None
  for attempt in range(3):
    try:
      output = subprocess.check_output(cmd).decode('utf-8').split('\n')
      break
    except Exception as e:
      logging.warning('%s failed (attempt %d/3): %s', ' '.join(cmd), attempt + 1, e)
  assert output is not None, '{} failed 3 times'.format(' '.join(cmd))
  for line in output:
    line = line.strip()
    if line:
      yield line


def _numeric_versions(path: str):
  versions = set()
  for name in tf.io.gfile.listdir(path):
    name = name.rstrip('/')
    if name.isdigit():
      versions.add(int(name))
  return versions


def cal_model_info_v2(exported_models_path: str, ckpt: str = None,
                      version: Union[int, str] = None
                      ) -> Dict[SubModelName, Tuple[SubModelSize, VersionPath]]:
  """Size in bytes and version dir of every sub-model of one export.

  The version is the one exported from `ckpt` (default: the latest checkpoint) according to the
  ExportSaverListenerState files, else the newest version all sub-models have. PS sizes include
  their hash-table dumps in `<ckpt>.assets`.
  """
  exported_models_path = exported_models_path.rstrip('/')
  if '://' not in exported_models_path and not exported_models_path.startswith('hdfs:'):
    exported_models_path = os.path.abspath(exported_models_path)
  assert tf.io.gfile.exists(exported_models_path), '{} does not exist'.format(
      exported_models_path)
  ckpt_base_path = os.path.dirname(exported_models_path)
  model_info = {
      name.rstrip('/'): 0
      for name in tf.io.gfile.listdir(exported_models_path)
      if not name.startswith('.') and
      tf.io.gfile.isdir(os.path.join(exported_models_path, name.rstrip('/')))
  }
  if ckpt is None:
    state = tf.train.get_checkpoint_state(ckpt_base_path)
    ckpt = os.path.basename(state.model_checkpoint_path) if state else None
  global_step = -1 if ckpt is None else int(ckpt.split('-')[-1])

  if version is None:
    common = None
    for sub_model in model_info:
      sub_model_path = os.path.join(exported_models_path, sub_model)
      state = export_state_utils.get_export_saver_listener_state(sub_model_path)
      if state.entries and global_step >= 0:
        versions = {
            int(os.path.basename(e.export_dir.rstrip('/')))
            for e in state.entries
            if e.global_step == global_step
        }
      else:
        versions = _numeric_versions(sub_model_path)
      common = versions if common is None else common & versions
    if not common:
      raise ValueError('no version of {} is exported for every sub-model (ckpt {})'.format(
          exported_models_path, ckpt))
    version = max(common)
  else:
    version = int(version)

  result = {}
  for sub_model in model_info:
    version_path = os.path.join(exported_models_path, sub_model, str(version))
    size = 0
    for root, _, files in tf.io.gfile.walk(version_path):
      for name in files:
        size += tf.io.gfile.stat(os.path.join(root, name)).length
    model_info[sub_model] += size
    result[sub_model] = version_path

  if ckpt is not None:
    assets = os.path.join(ckpt_base_path, '{}.assets'.format(ckpt))
    if exists(assets):
      for name in tf.io.gfile.listdir(assets):
        matched = ROW.match(name)
        key = 'ps_{}'.format(matched.group('index')) if matched else None
        if key in model_info:
          model_info[key] += tf.io.gfile.stat(os.path.join(assets, name)).length
  return {k: (model_info[k], result[k]) for k in model_info}


def total_memory() -> int:
  limit = _read_int(_cgroup_file('memory', 'memory.limit_in_bytes'))
  return limit if limit else int(os.environ.get('MY_MEM_LIMIT', 0))


def total_memory_v2() -> int:
  return psutil.virtual_memory().total


def cal_available_memory() -> int:
  usage = _read_int(_cgroup_file('memory', 'memory.usage_in_bytes'))
  limit = _read_int(_cgroup_file('memory', 'memory.limit_in_bytes'))
  return limit - usage


def cal_available_memory_v2() -> int:
  return psutil.virtual_memory().available


class CPU(object):
  """CPU usage of this container from cpuacct, as a fraction of one core."""

  def __init__(self):
    self._wall = self.wall_clock()
    self._cpu = self.cpu_clock()

  @staticmethod
  def wall_clock() -> int:
    try:
      return time.time_ns()
    except AttributeError:
      return int(subprocess.check_output(['date', '+%s%N']).strip())

  @staticmethod
  def cpu_clock() -> int:
    return _read_int(_cgroup_file('cpuacct', 'cpuacct.usage'))

  def cpu_usage(self) -> float:
    wall, cpu = self.wall_clock(), self.cpu_clock()
    usage = (cpu - self._cpu) / max(wall - self._wall, 1)
    self._wall, self._cpu = wall, cpu
    return usage


def num_cpu() -> float:
  quota = _read_int(_cgroup_file('cpu', 'cpu.cfs_quota_us'))
  period = _read_int(_cgroup_file('cpu', 'cpu.cfs_period_us'))
  if period == 0:
    return float(os.environ.get('MY_CPU_LIMIT', 1))
  return quota / period


def cal_cpu_usage() -> float:
  cpu = CPU()
  samples = []
  for _ in range(5):
    time.sleep(1)
    samples.append(round(cpu.cpu_usage() * 100, 2))
  return sum(samples) / len(samples)


def cal_cpu_usage_v2() -> float:
  return psutil.cpu_percent()
