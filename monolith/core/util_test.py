import os

import tensorflow as tf

from monolith.core import util

_ROOT = 'gs://test_folder/unzipped_tf_records_corrected_repartitioned/'
_PATHS = [
    _ROOT + '20200501/00/part', _ROOT + '20200502/00/part', _ROOT + '20200502/01/part',
    _ROOT + '20200503/00/part', _ROOT + '20200505/00/part'
]


class _Resolver:

  def __init__(self, num_workers):
    self._num_workers = num_workers

  def cluster_spec(self):
    return tf.train.ClusterSpec({'worker': ['w%d:1' % i for i in range(self._num_workers)]})


class RangeDatesetTest(tf.test.TestCase):

  def _filter(self, start_date, end_date):
    dataset = util.range_dateset(tf.data.Dataset.from_tensor_slices(_PATHS), _ROOT, start_date,
                                 end_date)
    return [p.decode() for p in dataset.as_numpy_iterator()]

  def test_single_day(self):
    self.assertEqual(self._filter('20200502', '20200502'), _PATHS[1:3])

  def test_two_days(self):
    self.assertEqual(self._filter('20200502', '20200503'), _PATHS[1:4])

  def test_wide_range(self):
    self.assertEqual(self._filter('20200401', '20200505'), _PATHS)

  def test_unbounded(self):
    self.assertEqual(self._filter(None, '20200502'), _PATHS[:3])
    self.assertEqual(self._filter('20200503', None), _PATHS[3:])
    self.assertEqual(self._filter(None, None), _PATHS)


class GcsAndCheckpointHelpersTest(tf.test.TestCase):

  def test_bucket_and_path(self):
    self.assertEqual(util.get_bucket_name_and_relavite_path('gs://bucket/a/b'),
                     ('bucket', 'a/b/'))
    self.assertEqual(util.get_bucket_name_and_relavite_path('gs://bucket'), ('bucket', ''))
    with self.assertRaisesRegex(AssertionError, 'must start with gs://'):
      util.get_bucket_name_and_relavite_path('/local/path')

  def test_download_and_list(self):
    src_dir = self.create_tempdir()
    src_dir.create_file('part-0', 'zero')
    src_dir.create_file('part-1', 'one')
    src_dir.create_file('other', '')
    files = util.list_gcs_files_with_prefix(os.path.join(src_dir.full_path, 'part'))
    self.assertEqual([os.path.basename(f) for f in files], ['part-0', 'part-1'])
    local = os.path.join(self.create_tempdir().full_path, 'copy')
    util.download_gcs_file(files[1], local)
    with open(local) as f:
      self.assertEqual(f.read(), 'one')

  def test_meta_file_and_shard_skip(self):
    meta = self.create_tempfile(content='a,10\nb,5\n\nc,20\nd,1\n')
    counts = util.parse_example_number_meta_file(meta.full_path, ',')
    self.assertEqual(counts, [('a', 10), ('b', 5), ('c', 20), ('d', 1)])
    # Shard 0 reads a, c; shard 1 reads b, d. 12 examples per shard consumed.
    self.assertEqual(util.calculate_shard_skip_file_number(counts, 2, 3, 4), [1, 2])
    unordered = self.create_tempfile(content='b,1\na,2\n')
    with self.assertRaisesRegex(AssertionError, 'ascending order, a after b'):
      util.parse_example_number_meta_file(unordered.full_path, ',')
    bad = self.create_tempfile(content='a;1\n')
    with self.assertRaisesRegex(ValueError, r'expected "<file>,<count>"'):
      util.parse_example_number_meta_file(bad.full_path, ',')

  def test_checkpoint_step(self):
    ckpt = self.create_tempdir()
    self.assertEqual(util.get_checkpoint_completed_step_number(ckpt.full_path), 0)
    for name in ('model.ckpt-100.meta', 'model.ckpt-2000.meta', 'model.ckpt-3000.index'):
      ckpt.create_file(name)
    self.assertEqual(util.get_checkpoint_completed_step_number(ckpt.full_path), 2000)

  def test_update_params(self):
    params = util.update_params({'global_batch_size': 64, 'batch_size_per_core': None},
                                _Resolver(2))
    self.assertEqual(params['batch_size_per_core'], 4)
    params = util.update_params({'global_batch_size': None, 'batch_size_per_core': 3},
                                _Resolver(1))
    self.assertEqual(params['global_batch_size'], 24)
    with self.assertRaisesRegex(AssertionError, r'batch_size_per_core \(3\) \* cores \(8\)'):
      util.update_params({'global_batch_size': 25, 'batch_size_per_core': 3}, _Resolver(1))


if __name__ == '__main__':
  tf.test.main()
