"""tfs_client: record framing, ExampleBatch -> Instance conversion, and its commands against the
built-in model server over loopback gRPC."""

import contextlib
import io
import os
import struct
import tempfile
import unittest

from absl import flags
from google.protobuf import text_format
import numpy as np

from idl.matrix.proto import example_pb2
from idl.matrix.proto import line_id_pb2
from idl.matrix.proto import proto_parser_pb2
from monolith.agent_service import gen_saved_model
from monolith.agent_service import model_server
from monolith.agent_service import tfs_client

FLAGS = flags.FLAGS
BATCH = 3


def example_batch() -> example_pb2.ExampleBatch:
  """Every feature kind the conversion handles, plus a shared one."""
  eb = example_pb2.ExampleBatch(batch_size=BATCH)
  v1 = eb.named_feature_list.add(name='f_v1')
  v2 = eb.named_feature_list.add(name='f_v2')
  floats = eb.named_feature_list.add(name='f_float')
  ints = eb.named_feature_list.add(name='f_int')
  shared = eb.named_feature_list.add(name='f_user', type=example_pb2.FeatureListType.SHARED)
  shared.feature.add().fid_v2_list.value.append((7 << 48) | 77)
  labels = eb.named_feature_list.add(name='__LABEL__')
  line_ids = eb.named_feature_list.add(name='__LINE_ID__')
  for i in range(BATCH):
    v1.feature.add().fid_v1_list.value.append((3 << 54) | (100 + i))
    v2.feature.add().fid_v2_list.value.extend([(5 << 48) | i, (5 << 48) | (i + 10)])
    floats.feature.add().float_list.value.append(i + 0.5)
    ints.feature.add().int64_list.value.append(i * 2)
    labels.feature.add().float_list.value.append(float(i % 2))
    line_ids.feature.add().bytes_list.value.append(
        line_id_pb2.LineId(uid=1000 + i).SerializeToString())
  return eb


def frame(payload: bytes, header: bytes = b'') -> bytes:
  return header + struct.pack('<Q', len(payload)) + payload


class TFSClientTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    FLAGS.mark_as_parsed()

  def setUp(self):
    self.saved = flags.FlagValues.flag_values_dict(FLAGS)
    self.tmp = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))

  def tearDown(self):
    for name in ('lagrangex_header', 'has_sort_id', 'kafka_dump', 'kafka_dump_prefix'):
      setattr(FLAGS, name, self.saved[name])

  def test_get_instance_proto(self):
    tensor_proto = tfs_client.get_instance_proto()
    self.assertEqual(tensor_proto.dtype, 7)  # DT_STRING
    self.assertEqual(tensor_proto.tensor_shape.dim[0].size, 256)
    inst = proto_parser_pb2.Instance()
    inst.ParseFromString(tensor_proto.string_val[0])
    self.assertEqual(len(inst.fid), 30)  # 6 slots x vocab 5
    self.assertEqual(sorted({fid >> 54 for fid in inst.fid}), [1, 2, 3, 4, 5, 6])

  def check_instances(self, tensor_proto):
    self.assertEqual(tensor_proto.tensor_shape.dim[0].size, BATCH)
    for i, serialized in enumerate(tensor_proto.string_val):
      inst = proto_parser_pb2.Instance()
      inst.ParseFromString(serialized)
      features = {f.name: f for f in inst.feature}
      self.assertEqual(list(features['f_v1'].fid), [(3 << 48) | (100 + i)])  # v1 -> v2 fid
      self.assertEqual(list(features['f_v2'].fid), [(5 << 48) | i, (5 << 48) | (i + 10)])
      self.assertEqual(list(features['f_float'].float_value), [i + 0.5])
      self.assertEqual(list(features['f_int'].int64_value), [i * 2])
      self.assertEqual(list(features['f_user'].fid), [(7 << 48) | 77])
      self.assertEqual(list(inst.label), [float(i % 2)])
      self.assertEqual(inst.line_id.uid, 1000 + i)

  def test_get_example_batch_to_instance_from_pb(self):
    path = os.path.join(self.tmp, 'examplebatch.data')
    with open(path, 'wb') as f:
      f.write(frame(example_batch().SerializeToString(), header=b'\0' * 8))
    FLAGS.lagrangex_header = True
    self.check_instances(tfs_client.get_example_batch_to_instance(path, 'pb'))

  def test_get_example_batch_to_instance_from_pbtxt(self):
    path = os.path.join(self.tmp, 'example_batch.pbtxt')
    with open(path, 'w') as f:
      f.write(text_format.MessageToString(example_batch()))
    FLAGS.lagrangex_header = True
    self.check_instances(tfs_client.get_example_batch_to_instance(path, 'pbtxt'))

  def test_read_data_headers(self):
    payload = b'payload'
    FLAGS.lagrangex_header = False
    FLAGS.has_sort_id = True
    FLAGS.kafka_dump = True
    stream = io.BytesIO(struct.pack('<Q', 3) + b'sid' + b'K' * 8 + frame(payload))
    self.assertEqual(tfs_client.read_data(stream), payload)
    # kafka_dump_prefix: a non-zero size is the sort id's size.
    FLAGS.kafka_dump_prefix = True
    FLAGS.kafka_dump = False
    stream = io.BytesIO(struct.pack('<Q', 2) + b'id' + frame(payload))
    self.assertEqual(tfs_client.read_data(stream), payload)
    with self.assertRaisesRegex(EOFError, 'expected 8 bytes'):
      tfs_client.read_data(io.BytesIO(b'\1\2'))

  def test_gen_random_file_round_trips(self):
    """gen_random_file (data_gen_utils) output reads back through read_data."""
    saved_slots, saved_batch = tfs_client.VALID_SLOTS, FLAGS.batch_size
    tfs_client.VALID_SLOTS = [1, 200, 5]
    FLAGS.batch_size = BATCH
    try:
      # No sort id: records get an (all-zero) lagrangex header.
      FLAGS.has_sort_id = False
      path = os.path.join(self.tmp, 'random_example_batch.data')
      tfs_client.gen_random_file(path, 'example_batch')
      FLAGS.lagrangex_header = True
      tensor_proto = tfs_client.get_example_batch_to_instance(path, 'pb')
      self.assertEqual(tensor_proto.tensor_shape.dim[0].size, BATCH)
      for i, serialized in enumerate(tensor_proto.string_val):
        inst = proto_parser_pb2.Instance.FromString(serialized)
        features = {f.name: f for f in inst.feature}
        for slot in (1, 200):  # always present
          self.assertEqual([fid >> 48 for fid in features[f'fc_slot_{slot}'].fid], [slot])
        # Slot 5 is dropped at random (drop_rate 0.5): zero or one fid, carrying its slot.
        if 'fc_slot_5' in features:
          self.assertLessEqual({fid >> 48 for fid in features['fc_slot_5'].fid}, {5})
        self.assertEqual(list(inst.label), [float(i % 2)])
        self.assertEqual(inst.line_id.uid >> 48, 1)
        self.assertTrue(set(inst.line_id.actions) <= set(range(1, 13)))
      # With a sort id, instances are read back by get_instance_proto.
      FLAGS.lagrangex_header = False
      FLAGS.has_sort_id = True
      path = os.path.join(self.tmp, 'random_instance.data')
      tfs_client.gen_random_file(path, 'instance')
      tensor_proto = tfs_client.get_instance_proto(path, BATCH)
      for serialized in tensor_proto.string_val:
        inst = proto_parser_pb2.Instance.FromString(serialized)
        fids = {f.name: list(f.fid) for f in inst.feature}
        self.assertEqual([fid >> 48 for fid in fids['fc_slot_200']], [200])
        self.assertEqual(inst.line_id.sample_rate, 1.0)
    finally:
      tfs_client.VALID_SLOTS, FLAGS.batch_size = saved_slots, saved_batch

  def test_bad_file_type(self):
    with self.assertRaisesRegex(ValueError, 'pb or pbtxt'):
      tfs_client.get_example_batch_to_instance(os.path.join(self.tmp, 'x'), 'json')


class TFSClientMainTest(unittest.TestCase):
  """`main` against the built-in model server serving the demo model as `entry`."""

  @classmethod
  def setUpClass(cls):
    FLAGS.mark_as_parsed()
    cls.tmp = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
    base = gen_saved_model.export_demo_models(os.path.join(cls.tmp, 'models'), ('entry',))
    config = os.path.join(cls.tmp, 'models.config')
    with open(config, 'w') as f:
      f.write(f'model_config_list {{ config {{ name: "entry" base_path: "{base}/entry" }} }}')
    cls.server = model_server.ModelServer(0, config)
    cls.server.start()
    cls.conf = os.path.join(cls.tmp, 'agent.conf')
    with open(cls.conf, 'w') as f:
      f.write(f'bzid demo\nbase_name demo\ndeploy_type entry\nzk_servers fake\n'
              f'tfs_entry_port {cls.server.port}\n'
              f'platform_config_file {cls.tmp}/platform.cfg\n')
    os.environ['MY_HOST_IP'] = '127.0.0.1'
    import time
    from tensorflow_serving.apis import get_model_status_pb2
    spec = get_model_status_pb2.GetModelStatusRequest().model_spec
    spec.name = 'entry'
    deadline = time.time() + 60
    while not any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
                  for s in cls._statuses(spec)):
      assert time.time() < deadline, 'demo model not loaded'
      time.sleep(0.1)

  @classmethod
  def _statuses(cls, spec):
    try:
      return cls.server.core.get_status(spec)
    except model_server.ModelServerError:
      return []

  @classmethod
  def tearDownClass(cls):
    cls.server.stop(0)

  def run_main(self, **flag_values):
    defaults = dict(conf=self.conf, cmd_type='get', input_type='instance', input_file=None,
                    model_name=None, target=None, batch_size=4, signature_name='serving_default')
    defaults.update(flag_values)
    for name, value in defaults.items():
      setattr(FLAGS, name, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      code = tfs_client.main([])
    return code, out.getvalue(), err.getvalue()

  def test_predict_random_instances(self):
    code, out, _ = self.run_main()
    self.assertEqual(code, 0)
    scores = [line for line in out.splitlines() if line.startswith('scores: ')]
    self.assertEqual(len(scores), 1)
    values = np.array(eval(scores[0][len('scores: '):]))  # pylint: disable=eval-used
    self.assertEqual(values.shape, (4,))
    self.assertTrue(np.all((values > 0) & (values < 1)))

  def test_status(self):
    code, out, _ = self.run_main(cmd_type='status')
    self.assertEqual(code, 0)
    self.assertIn('state: AVAILABLE', out)

  def test_unknown_model_is_reported(self):
    code, _, err = self.run_main(model_name='nope')
    self.assertEqual(code, 2)
    self.assertIn('NOT_FOUND', err)
    self.assertIn('nope', err)

  def test_profile(self):
    code, out, _ = self.run_main(cmd_type='profile', parallel_num=2, profile_duration=2)
    self.assertEqual(code, 0)
    summary = [line for line in out.splitlines() if line.startswith('profile: ')]
    self.assertEqual(len(summary), 1, out)
    requests = int(summary[0].split()[1])
    self.assertGreater(requests, 10)

  def test_unknown_signature_is_reported(self):
    code, _, err = self.run_main(signature_name='nosig')
    self.assertEqual(code, 2)
    self.assertIn('nosig', err)


if __name__ == '__main__':
  unittest.main()
