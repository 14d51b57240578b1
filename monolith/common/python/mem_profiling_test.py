import os
from unittest import mock

from absl.testing import absltest

from monolith import utils
from monolith.common.python import mem_profiling

_TCMALLOC = '../gperftools/libtcmalloc/lib/libtcmalloc.so'


class MemProfilingTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    patcher = mock.patch.dict(os.environ)
    patcher.start()
    self.addCleanup(patcher.stop)
    for name in ('LD_PRELOAD', 'HEAPPROFILE', 'MLP_ROLE_INDEX'):
      os.environ.pop(name, None)
    self._tcmalloc = utils.get_libops_path(_TCMALLOC)

  def test_enable_tcmalloc_sets_preload(self):
    mem_profiling.enable_tcmalloc()
    self.assertEqual(os.environ['LD_PRELOAD'], self._tcmalloc)
    self.assertEqual(self._tcmalloc, os.path.join(utils.find_main(), _TCMALLOC))

  def test_enable_tcmalloc_appends_to_preload(self):
    os.environ['LD_PRELOAD'] = '/opt/libfoo.so'
    mem_profiling.enable_tcmalloc()
    self.assertEqual(os.environ['LD_PRELOAD'], '/opt/libfoo.so:' + self._tcmalloc)

  def test_defaults(self):
    mem_profiling.setup_heap_profile()
    self.assertEqual(os.environ['HEAPPROFILE'], os.path.join(utils.find_main(), 'hprof_0'))
    self.assertEqual(os.environ['HEAP_PROFILE_INUSE_INTERVAL'], '104857600')
    self.assertEqual(os.environ['HEAP_PROFILE_ALLOCATION_INTERVAL'], '1073741824')
    self.assertEqual(os.environ['HEAP_PROFILE_SAMPLE_RATIO'], '1.0')
    self.assertEqual(os.environ['HEAP_PROFILE_TIME_INTERVAL'], '0')
    self.assertEqual(os.environ['HEAP_PROFILE_MMAP'], 'false')
    self.assertEqual(os.environ['LD_PRELOAD'], self._tcmalloc)

  def test_sample_ratio_scales_intervals(self):
    os.environ['MLP_ROLE_INDEX'] = '3'
    os.environ['LD_PRELOAD'] = '/opt/a.so'
    heap_dir = self.create_tempdir().full_path
    mem_profiling.setup_heap_profile(heap_pro_file=heap_dir,
                heap_profile_inuse_interval=1000,
                heap_profile_allocation_interval=4000,
                heap_profile_time_interval=30,
                sample_ratio=0.25,
                heap_profile_mmap=True)
    self.assertEqual(os.environ['HEAPPROFILE'], os.path.join(heap_dir, 'hprof_3'))
    self.assertEqual(os.environ['HEAP_PROFILE_INUSE_INTERVAL'], '4000')
    self.assertEqual(os.environ['HEAP_PROFILE_ALLOCATION_INTERVAL'], '16000')
    self.assertEqual(os.environ['HEAP_PROFILE_SAMPLE_RATIO'], '0.25')
    self.assertEqual(os.environ['HEAP_PROFILE_TIME_INTERVAL'], '30')
    self.assertEqual(os.environ['HEAP_PROFILE_MMAP'], 'true')
    self.assertEqual(os.environ['LD_PRELOAD'], '/opt/a.so:' + self._tcmalloc)

  def test_non_positive_sample_ratio(self):
    for ratio in (0, -1.0):
      with self.assertRaisesRegex(ValueError, 'sample_ratio must be positive'):
        mem_profiling.setup_heap_profile(sample_ratio=ratio)
    self.assertNotIn('LD_PRELOAD', os.environ)


if __name__ == '__main__':
  absltest.main()
