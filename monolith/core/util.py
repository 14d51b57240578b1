"""Input helpers for TPU tasks: date-range filtering of data files and GCS/TPU bookkeeping."""

import re
from typing import List, Tuple

from absl import logging
import tensorflow as tf

_GS_PREFIX = "gs://"
_CORE_NUMBER_PER_HOST = 8
_DATE_FORMAT_LEN = 8
_MIN_DATE = "00000000"
_MAX_DATE = "99999999"
_CHECKPOINT_META_RE = re.compile(r'model\.ckpt-(\d+)\.meta$')


def range_dateset(dataset: tf.data.Dataset, root_path: str, start_date=None,
                  end_date=None) -> tf.data.Dataset:
  """Keeps the file paths `<root_path>YYYYMMDD...` whose date is in [start_date, end_date]."""
  start_date = _MIN_DATE if start_date is None else start_date
  end_date = _MAX_DATE if end_date is None else end_date
  logging.info('start_date: %s, end_date: %s.', start_date, end_date)
  start, end = int(start_date), int(end_date)
  offset = len(root_path)

  def in_range(path):
    date = tf.strings.to_number(tf.strings.substr(path, offset, _DATE_FORMAT_LEN),
                                out_type=tf.int32)
    return tf.logical_and(tf.greater_equal(date, start), tf.less_equal(date, end))

  return dataset.filter(in_range)


def get_bucket_name_and_relavite_path(gs_path: str) -> Tuple[str, str]:
  """`gs://bucket/a/b` -> (`bucket`, `a/b/`)."""
  assert _GS_PREFIX in gs_path, 'GCS path must start with {}: {}'.format(_GS_PREFIX, gs_path)
  path = gs_path[gs_path.index(_GS_PREFIX) + len(_GS_PREFIX):]
  bucket, _, relative = path.partition('/')
  relative = relative.rstrip('/')
  return bucket, (relative + '/') if relative else ''


def download_gcs_file(gs_path: str, local_file_name: str):
  # tf.io.gfile instead of google-cloud-storage: one client for every filesystem TF supports.
  tf.io.gfile.copy(gs_path, local_file_name, overwrite=True)


def download_gcs_file_with_relative_path(bucket_name: str, relative_path: str,
                                         local_file_name: str):
  download_gcs_file('{}{}/{}'.format(_GS_PREFIX, bucket_name, relative_path), local_file_name)


def list_gcs_files_with_prefix(gs_path: str) -> List[str]:
  """Paths of the files whose name starts with `gs_path`."""
  return sorted(tf.io.gfile.glob(gs_path + '*'))


def parse_example_number_meta_file(meta_file: str, seperator: str) -> List[Tuple[str, int]]:
  """Reads `name<seperator>count` lines; names must be in ascending order."""
  file_example_number = []
  with tf.io.gfile.GFile(meta_file) as f:
    for line_number, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      fields = line.split(seperator)
      if len(fields) != 2:
        raise ValueError('{}:{}: expected "<file>{}<count>", got {!r}'.format(
            meta_file, line_number, seperator, line))
      name, count = fields[0], int(fields[1])
      if file_example_number:
        assert file_example_number[-1][0] < name, (
            '{}:{}: file names must be in ascending order, {} after {}'.format(
                meta_file, line_number, name, file_example_number[-1][0]))
      file_example_number.append((name, count))
  return file_example_number


def calculate_shard_skip_file_number(file_example_number: List[Tuple[str, int]], shard_num: int,
                                     completed_steps_number: int,
                                     batch_size_per_core: int) -> List[int]:
  """For each shard, how many whole files its completed steps have consumed.

  Files are assigned round-robin to shards (as `Dataset.shard` does); each shard consumed
  `completed_steps_number * batch_size_per_core` examples.
  """
  consumed = completed_steps_number * batch_size_per_core
  skip = []
  for shard in range(shard_num):
    remaining = consumed
    files = 0
    for _, count in file_example_number[shard::shard_num]:
      if remaining < count:
        break
      remaining -= count
      files += 1
    skip.append(files)
  return skip


def get_checkpoint_completed_step_number(checkpoint_path: str) -> int:
  """Largest N over the `model.ckpt-N.meta` files under `checkpoint_path` (0 if none)."""
  steps = [0]
  for name in tf.io.gfile.listdir(checkpoint_path):
    match = _CHECKPOINT_META_RE.search(name)
    if match:
      steps.append(int(match.group(1)))
  return max(steps)


def update_params(params, tpu_cluster_resolver):
  """Derives per-core and global batch sizes from the TPU cluster size (8 cores per host)."""
  num_hosts = len(tpu_cluster_resolver.cluster_spec().as_dict().get('worker', [None]))
  num_cores = num_hosts * _CORE_NUMBER_PER_HOST
  if params.get('batch_size_per_core') is None:
    params['batch_size_per_core'] = params['global_batch_size'] // num_cores
  if params.get('global_batch_size') is None:
    params['global_batch_size'] = params['batch_size_per_core'] * num_cores
  assert params['batch_size_per_core'] * num_cores == params['global_batch_size'], (
      'batch_size_per_core ({}) * cores ({}) != global_batch_size ({})'.format(
          params['batch_size_per_core'], num_cores, params['global_batch_size']))
  return params
