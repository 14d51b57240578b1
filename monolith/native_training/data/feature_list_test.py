import os

from absl import flags
from absl.testing import absltest
import tensorflow as tf

from monolith.native_training.data import feature_list as fl_lib
from monolith.native_training.data import utils

FLAGS = flags.FLAGS


def _testdata(name):
  return os.path.join(os.environ['TEST_SRCDIR'], os.environ['TEST_WORKSPACE'],
                      'monolith/native_training/data/testdata', name)


class DataclassTest(absltest.TestCase):

  def test_feed(self):
    feed = fl_lib.Feed(feed_name='u', shared='Yes', feature_id='7')
    self.assertEqual((feed.name, feed.shared, feed.feature_id), ('u', True, 7))
    self.assertFalse(fl_lib.Feed(feed_name='u').shared)
    self.assertFalse(fl_lib.Feed(shared='nope').shared)

  def test_cache_names(self):
    self.assertEqual(fl_lib.Cache(cache_name='a', cache_key_class='K').name,
                     'a')
    self.assertEqual(fl_lib.Cache(cache_key_class='K').name, 'K')
    self.assertEqual(fl_lib.Cache(cache_column='x').name, 'cache_column')
    self.assertEqual(fl_lib.Cache(capacity='12', timeout='3').capacity, 12)
    with self.assertRaisesRegex(Exception, 'no name for cache'):
      _ = fl_lib.Cache(capacity='1').name

  def test_feature_normalisation(self):
    f = fl_lib.Feature(feature_name='f_user_id-f_page',
                       depend='f_user_id, "fc_Page"',
                       slot='504',
                       args="'1',2",
                       shared='T',
                       need_raw='0',
                       input_optional='true,false',
                       feature_version='3')
    self.assertEqual(f.name, 'user_id-page')
    self.assertEqual(f.depend, ['f_user_id', 'fc_Page'])
    self.assertEqual(f.depend_strip_prefix, ['user_id', 'page'])
    self.assertEqual(f.args, ['1', '2'])
    self.assertEqual((f.slot, f.feature_version), (504, 3))
    self.assertTrue(f.shared)
    self.assertFalse(f.need_raw)
    self.assertEqual(f.input_optional, [True, False])
    self.assertEqual(
        str(f), 'feature_name=f_user_id-f_page;depend=f_user_id,fc_Page;'
        'slot=504;args=1,2;feature_version=3;shared=true;'
        'input_optional=true,false')

  def test_feature_name_prefix_rules(self):
    self.assertEqual(fl_lib.Feature(feature_name='fc_Page').name, 'page')
    self.assertEqual(
        fl_lib.Feature(feature_name='fc_a-fc_B').name, 'a-b')
    # `f_` is only stripped when the whole name starts with it.
    self.assertEqual(fl_lib.Feature(feature_name='uid-f_x').name, 'uid-f_x')
    self.assertEqual(fl_lib.Feature(feature_name='f_uid-fc_x').name, 'uid-x')


class FeatureListParseTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.fl = fl_lib.FeatureList.parse(_testdata('feature_list.conf'))

  def test_columns_feeds_caches(self):
    self.assertEqual(self.fl.column_name, {'user_id', 'item_id', 'page'})
    self.assertEqual(set(self.fl.feeds), {'user', 'item'})
    self.assertTrue(self.fl.feeds['user'].shared)
    self.assertEqual(self.fl.feeds['user'].feature_id, 3)
    self.assertFalse(self.fl.feeds['item'].shared)
    self.assertEqual(set(self.fl.caches),
                     {'cache_column', 'user_cache', 'ItemKey'})
    self.assertEqual(self.fl.caches['cache_column'].cache_column, 'user_id')
    cache = self.fl.caches['user_cache']
    self.assertEqual((cache.capacity, cache.timeout, cache.cache_type),
                     (1000, 60, 'lru'))

  def test_features(self):
    self.assertLen(self.fl, 6)
    user = self.fl['f_user_id']
    self.assertEqual((user.depend, user.method, user.slot, user.args),
                     (['user_id'], 'Hash', 1, ['1', '2']))
    item = self.fl['item_id']
    self.assertTrue(item.shared)
    self.assertTrue(item.need_raw)
    cross = self.fl['f_user_id-f_page']
    self.assertEqual(cross.input_optional, [True, False])
    self.assertEqual(cross.depend_strip_prefix, ['user_id', 'page'])
    # A mid-line value keeps its inner spaces up to the last space before the
    # next key; the unknown key is dropped.
    self.assertEqual(self.fl['fc_Page'].feature_group, ['g1', 'g2'])
    self.assertEqual(self.fl['fc_user_id-fc_item_id'].feature_version, 2)
    # The last value runs to the end of the line; trailing `;` is removed.
    self.assertEqual(self.fl['f_user_id_dup'].args,
                     ['first last value', 'with spaces'])

  def test_lookups(self):
    self.assertIs(self.fl[1], self.fl['f_user_id'])  # first in file order
    self.assertEqual([f.feature_name for f in self.fl.get_with_slot(1)],
                     ['f_user_id', 'f_user_id_dup'])
    self.assertEqual(self.fl.get_with_slot(999), [])
    self.assertIs(self.fl['  user_id '], self.fl['f_user_id'])
    self.assertIs(self.fl['Page'], self.fl['fc_Page'])
    self.assertIs(self.fl['user_id-page'], self.fl['f_user_id-f_page'])
    self.assertIs(self.fl['user_id-item_id'], self.fl['fc_user_id-fc_item_id'])
    self.assertIn('user_id', self.fl)
    self.assertIn(504, self.fl)
    self.assertNotIn(7, self.fl)
    self.assertNotIn('nothing', self.fl)
    self.assertIsNone(self.fl.get('nothing'))
    self.assertEqual(self.fl.get(7, 'dflt'), 'dflt')
    with self.assertRaisesRegex(Exception, 'there is no feature 7'):
      _ = self.fl[7]
    with self.assertRaisesRegex(Exception, 'there is no feature nothing'):
      _ = self.fl['nothing']
    self.assertEqual({f.slot for f in self.fl}, {1, 200, 504, 305, 505})

  def test_cached_and_collected(self):
    self.assertIs(fl_lib.FeatureList.parse(_testdata('feature_list.conf')),
                  self.fl)

  def test_use_new_names(self):
    # Copy the fixture so the per-file cache does not return the old-named list.
    path = os.path.join(self.create_tempdir().full_path, 'fl.conf')
    tf.io.gfile.copy(_testdata('feature_list.conf'), path)
    new_fl = fl_lib.FeatureList.parse(path, use_old_name=False)
    self.assertEqual(
        set(new_fl.features),
        {'user_id', 'item_id', 'user_id-page', 'page', 'user_id-item_id',
         'user_id_dup'})
    self.assertIn(new_fl, tf.compat.v1.get_collection('feature_list'))

  def test_bad_line_reraises(self):
    with self.assertRaises(ValueError):
      fl_lib.FeatureList.parse(_testdata('bad_feature_list.conf'))
    with self.assertRaises(AssertionError):
      fl_lib.FeatureList.parse()  # --feature_list is not defined here

  def test_get_feature_name_and_slot(self):
    utils.TOBENV = False
    # Without a default feature list every lookup falls back to utils.
    self.assertEqual(fl_lib.get_feature_name_and_slot(5), ('slot_5', 5))
    self.assertEqual(fl_lib.get_feature_name_and_slot('slot_9'), ('slot_9', 9))
    flags.DEFINE_string('feature_list', None, 'test flag')
    try:
      FLAGS.feature_list = _testdata('feature_list.conf')
      self.assertEqual(fl_lib.get_feature_name_and_slot(200),
                       ('f_item_id', 200))
      self.assertEqual(fl_lib.get_feature_name_and_slot('user_id'),
                       ('user_id', 1))
      self.assertEqual(fl_lib.get_feature_name_and_slot(77), ('slot_77', 77))
    finally:
      FLAGS.feature_list = None

    class Column:
      feature_name = 'col'
      feature_slot = 12

    self.assertEqual(fl_lib.get_feature_name_and_slot(Column()), ('col', 12))
    with self.assertRaises(AssertionError):
      fl_lib.get_feature_name_and_slot(3.5)


if __name__ == '__main__':
  absltest.main()
