import os
import struct
import time

from absl.testing import absltest
import tensorflow as tf

from idl.matrix.proto import example_pb2
from idl.matrix.proto import line_id_pb2
from idl.matrix.proto import proto_parser_pb2
from monolith.native_training.data.feature_list import FeatureList
from monolith.native_training.model_export import data_gen_utils as dg

_FEATURE_LIST = """\
feature_name=f_user_id depend=user_id method=Hash slot=1
feature_name=f_item_id depend=item_id method=Hash slot=200
feature_name=f_page depend=page method=Hash slot=305
feature_name=f_user_id-f_page depend=f_user_id,f_page method=Combine slot=504
feature_name=f_click_recent depend=click method=Hash slot=77
"""
_SPARSE = ['f_user_id', 'f_item_id', 'f_page', 'f_user_id-f_page',
           'f_click_recent']
_SLOTS = {'f_user_id': 1, 'f_item_id': 200, 'f_page': 305,
          'f_user_id-f_page': 504, 'f_click_recent': 77}
_ACTIONS = [3, 4, 5]


def read_records(path, header_size):
  """Reads `<header><u64 LE length><payload>` records; returns (headers, payloads)."""
  headers, payloads = [], []
  with open(path, 'rb') as stream:
    data = stream.read()
  pos = 0
  while pos < len(data):
    headers.append(data[pos:pos + header_size])
    pos += header_size
    (size,) = struct.unpack('<Q', data[pos:pos + 8])
    pos += 8
    payload = data[pos:pos + size]
    assert len(payload) == size, 'truncated record'
    payloads.append(payload)
    pos += size
  return headers, payloads


class DataGenUtilsTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.tmp = self.create_tempdir().full_path
    fl_path = os.path.join(self.tmp, 'feature_list.conf')
    with open(fl_path, 'w') as f:
      f.write(_FEATURE_LIST)
    self.feature_list = FeatureList.parse(fl_path)

  def _args(self, variant_type, **kwargs):
    params = dict(sparse_features=list(_SPARSE),
                  extra_features=['uid', 'item_id', 'req_time', 'sample_rate',
                                  'actions', 'chnid', 'user_id'],
                  extra_feature_shapes=[1, 1, 1, 1, 2, 1, 1],
                  feature_list=self.feature_list,
                  batch_size=4,
                  variant_type=variant_type)
    params.update(kwargs)
    return dg.ParserArgs(**params)

  def _check_line_id(self, line_id, now):
    self.assertEqual(line_id.uid >> 48, 1)
    self.assertEqual(line_id.item_id >> 48, 200)
    self.assertBetween(line_id.req_time, now - 5, now + 5)
    self.assertEqual(line_id.sample_rate, 1.0)
    self.assertLen(line_id.actions, 2)
    self.assertContainsSubset(set(line_id.actions), set(_ACTIONS))
    self.assertTrue(line_id.HasField('chnid'))
    self.assertLen(line_id.user_id, 8)

  def test_headers(self):
    self.assertEqual(dg.lg_header(None), bytes(8))
    self.assertEqual(dg.lg_header(''), bytes(8))
    # Java: "hello".hashCode() == 99162322 == 0x05E918D2.
    self.assertEqual(dg.lg_header('hello'), b'\x00\xd2\x18\xe9\x00\x00\x00\x00')
    # Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE (0x80000000).
    self.assertEqual(dg.lg_header('polygenelubricants'), bytes(8))
    self.assertEqual(dg.sort_header(), bytes(8))
    self.assertEqual(dg.sort_header(kafka_dump=True), bytes(16))
    self.assertEqual(dg.sort_header(kafka_dump_prefix=True), bytes(24))
    with self.assertRaisesRegex(Exception, 'not support'):
      dg.sort_header(kafka_dump=True, kafka_dump_prefix=True)
    with self.assertRaisesRegex(Exception, 'not support'):
      dg.gen_random_data_file(os.path.join(self.tmp, 'x'),
                              self._args('example'),
                              kafka_dump=True,
                              kafka_dump_prefix=True)

  def test_fid_generators(self):
    fids = dg.gen_fids_v1(5, 3)
    self.assertLen(fids, 3)
    self.assertEqual({fid >> 54 for fid in fids}, {5})
    self.assertEqual(dg.gen_fids_v1(0), [])
    self.assertEqual(dg.gen_fids_v1(dg.MAX_SLOT_V1), [])
    fids = dg.gen_fids_v2(300, 2)
    self.assertEqual({fid >> 48 for fid in fids}, {300})
    with self.assertRaises(AssertionError):
      dg.gen_fids_v2(0)
    with self.assertRaises(AssertionError):
      dg.gen_fids_v2(dg.MAX_SLOT_V2)

  def test_example_file(self):
    path = os.path.join(self.tmp, 'example.bin')
    now = int(time.time())
    dg.gen_random_data_file(path, self._args('example', drop_rate=0.0),
                            num_batch=3, actions=_ACTIONS)
    headers, payloads = read_records(path, 8)
    self.assertLen(payloads, 3 * 4)
    self.assertEqual(set(headers), {bytes(8)})
    for index, payload in enumerate(payloads):
      example = example_pb2.Example.FromString(payload)
      by_name = {nf.name: nf for nf in example.named_feature}
      self.assertEqual(set(by_name), set(_SPARSE))
      for name, nf in by_name.items():
        self.assertEqual(nf.id, _SLOTS[name])
        fids = nf.feature.fid_v2_list.value
        self.assertEqual({fid >> 48 for fid in fids} - {_SLOTS[name]}, set())
        # drop_rate=0: plain features always present, sequence-like
        # (`_recent`, method Combine) ones never.
        expected = 0 if name in ('f_user_id-f_page', 'f_click_recent') else 1
        self.assertLen(fids, expected, name)
      self.assertEqual(list(example.label), [float(index % 4 % 2)])
      self._check_line_id(example.line_id, now)

  def test_instance_file_with_kafka_dump(self):
    path = os.path.join(self.tmp, 'instance.bin')
    now = int(time.time())
    args = self._args('instance', fidv1_features=[1, 200, 9],
                      dense_features=['ctr', 'cnt'],
                      dense_feature_shapes=[2, 1],
                      dense_feature_types=[tf.float32, tf.int64])
    dg.gen_random_data_file(path, args, num_batch=2, kafka_dump=True,
                            actions=_ACTIONS)
    headers, payloads = read_records(path, 16)
    self.assertLen(payloads, 8)
    self.assertEqual(set(headers), {bytes(16)})
    for payload in payloads:
      instance = proto_parser_pb2.Instance.FromString(payload)
      v1_slots = [fid >> 54 for fid in instance.fid]
      self.assertEqual(v1_slots.count(1), 1)
      self.assertEqual(v1_slots.count(200), 1)
      self.assertLessEqual(v1_slots.count(9), 3)
      self.assertContainsSubset(set(v1_slots), {1, 200, 9})
      features = {f.name: f for f in instance.feature}
      self.assertEqual(set(features), set(_SPARSE) | {'ctr', 'cnt'})
      for name in ('f_user_id', 'f_item_id', 'f_page'):
        self.assertEqual([fid >> 48 for fid in features[name].fid],
                         [_SLOTS[name]])
      self.assertLessEqual(len(features['f_user_id-f_page'].fid), 2)
      self.assertLen(features['ctr'].float_value, 2)
      self.assertLen(features['cnt'].int64_value, 1)
      self._check_line_id(instance.line_id, now)

  def test_example_batch_file_with_lagrangex_header(self):
    path = os.path.join(self.tmp, 'example_batch.bin')
    now = int(time.time())
    args = self._args('example_batch', batch_size=6,
                      dense_features=['label', 'ctr'],
                      dense_feature_shapes=[1, 3])
    dg.gen_random_data_file(path, args, num_batch=2, source='hello',
                            sort_id=False, actions=_ACTIONS)
    headers, payloads = read_records(path, 8)
    self.assertLen(payloads, 2)
    self.assertEqual(set(headers), {b'\x00\xd2\x18\xe9\x00\x00\x00\x00'})
    for payload in payloads:
      batch = example_pb2.ExampleBatch.FromString(payload)
      self.assertEqual(batch.batch_size, 6)
      lists = {nfl.name: nfl for nfl in batch.named_feature_list}
      self.assertEqual(set(lists),
                       set(_SPARSE) | {'ctr', '__LINE_ID__', '__LABEL__'})
      for nfl in lists.values():
        self.assertLen(nfl.feature, 6, nfl.name)
      for name in _SPARSE:
        self.assertEqual(lists[name].id, _SLOTS[name])
        for feature in lists[name].feature:
          self.assertEqual({fid >> 48 for fid in feature.fid_v2_list.value} -
                           {_SLOTS[name]}, set())
      # Slots 1 and 200 are in every row whatever the drop rate.
      for name in ('f_user_id', 'f_item_id'):
        for feature in lists[name].feature:
          self.assertLen(feature.fid_v2_list.value, 1)
      for feature in lists['ctr'].feature:
        self.assertLen(feature.float_list.value, 3)
      # The `label` dense feature feeds __LABEL__ instead of i % 2.
      for feature in lists['__LABEL__'].feature:
        self.assertLen(feature.float_list.value, 1)
        self.assertBetween(feature.float_list.value[0], 0.0, 1.0)
      for feature in lists['__LINE_ID__'].feature:
        self.assertLen(feature.bytes_list.value, 1)
        self._check_line_id(
            line_id_pb2.LineId.FromString(feature.bytes_list.value[0]), now)

  def test_example_batch_default_labels_and_kafka_prefix(self):
    path = os.path.join(self.tmp, 'eb_prefix.bin')
    dg.gen_random_data_file(path, self._args(None), num_batch=1,
                            kafka_dump_prefix=True)
    headers, payloads = read_records(path, 24)
    self.assertEqual(headers, [bytes(24)])
    batch = example_pb2.ExampleBatch.FromString(payloads[0])
    labels = [f.float_list.value[0] for nfl in batch.named_feature_list
              if nfl.name == '__LABEL__' for f in nfl.feature]
    self.assertEqual(labels, [0.0, 1.0, 0.0, 1.0])

  def test_unknown_line_id_field_raises(self):
    with self.assertRaisesRegex(AttributeError, 'stay_time'):
      dg.fill_line_id(line_id_pb2.LineId(), ['stay_time'])

  def test_parser_args_from_collections(self):
    with tf.Graph().as_default():
      tf.compat.v1.add_to_collection('sparse_features', ['f_page'])
      tf.compat.v1.add_to_collection('variant_type', 'instance')
      tf.compat.v1.add_to_collection('feature_list', self.feature_list)
      for name in ('pred', 'pred', 'score'):
        tf.compat.v1.add_to_collection('signature_name', name)
      args = dg.ParserArgs(batch_size=8)
      self.assertEqual(args.sparse_features, ['f_page'])
      self.assertEqual(args.variant_type, 'instance')
      self.assertIs(args.feature_list, self.feature_list)
      self.assertCountEqual(args.signature_name,
                            ['pred', 'score', 'serving_default'])
      self.assertEqual((args.model_name, args.batch_size, args.drop_rate),
                       ('entry', 8, 0.5))
      self.assertIsNone(args.dense_features)
    with tf.Graph().as_default():
      args = dg.ParserArgs(signature_name='sig')
      self.assertIsNone(args.feature_list)  # no --feature_list: only logged
      self.assertCountEqual(args.signature_name, ['sig', 'serving_default'])


if __name__ == '__main__':
  absltest.main()
