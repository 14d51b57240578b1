"""tcmalloc heap profiling, configured through the environment of the processes to be started.

Environment changes only affect child processes started afterwards (LD_PRELOAD is read by the
dynamic loader at process start).
"""

import os

from absl import logging

from monolith import utils
from monolith.native_training.mlp_utils import MLPEnv

_TCMALLOC_PATH = '../gperftools/libtcmalloc/lib/libtcmalloc.so'


def enable_tcmalloc():
  """Appends Monolith's libtcmalloc to LD_PRELOAD (keeping what is already preloaded)."""
  tcmalloc = utils.get_libops_path(_TCMALLOC_PATH)
  preload = os.environ.get('LD_PRELOAD', '')
  os.environ['LD_PRELOAD'] = '{}:{}'.format(preload, tcmalloc) if preload else tcmalloc
  logging.info('LD_PRELOAD=%s', os.environ['LD_PRELOAD'])


def setup_heap_profile(heap_pro_file=None,
                       heap_profile_inuse_interval=104857600,
                       heap_profile_allocation_interval=1073741824,
                       heap_profile_time_interval=0,
                       sample_ratio=1.0,
                       heap_profile_mmap=False):
  """Enables tcmalloc heap profiles `<dir>/hprof_<task index>` for processes started later.

  The byte intervals are divided by `sample_ratio`, so that sampling fewer allocations still
  dumps at comparable real allocation volumes.
  """
  if not sample_ratio or sample_ratio <= 0:
    raise ValueError('sample_ratio must be positive, got {}'.format(sample_ratio))
  enable_tcmalloc()
  index = MLPEnv().index
  heap_dir = heap_pro_file or utils.find_main()
  os.environ['HEAPPROFILE'] = os.path.join(heap_dir, 'hprof_{}'.format(index))
  os.environ['HEAP_PROFILE_INUSE_INTERVAL'] = str(
      int(heap_profile_inuse_interval * (1 / sample_ratio)))
  os.environ['HEAP_PROFILE_ALLOCATION_INTERVAL'] = str(
      int(heap_profile_allocation_interval * (1 / sample_ratio)))
  os.environ['HEAP_PROFILE_SAMPLE_RATIO'] = str(sample_ratio)
  os.environ['HEAP_PROFILE_TIME_INTERVAL'] = str(heap_profile_time_interval)
  os.environ['HEAP_PROFILE_MMAP'] = str(heap_profile_mmap).lower()
