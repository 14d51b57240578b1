"""The built-in model server over loopback gRPC with real SavedModels."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import grpc
import numpy as np
import tensorflow as tf

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service import gen_saved_model
from monolith.agent_service import model_server

State = get_model_status_pb2.ModelVersionStatus.State


def wait_until(cond, timeout=60, interval=0.1):
  deadline = time.time() + timeout
  while time.time() < deadline:
    value = cond()
    if value:
      return value
    time.sleep(interval)
  raise AssertionError(f'condition not met in {timeout} s')


class ModelServerTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.tmp = tempfile.mkdtemp()
    # One export reused by copying: exporting takes seconds, copying milliseconds.
    cls.v1 = gen_saved_model.export_demo_model(os.path.join(cls.tmp, 'src', '1'), seed=1)
    cls.v2 = gen_saved_model.export_demo_model(os.path.join(cls.tmp, 'src', '2'), seed=2)
    cls.expected = {
        seed: tf.saved_model.load(path).signatures['predict']
        for seed, path in ((1, cls.v1), (2, cls.v2))
    }

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp)

  def setUp(self):
    self.base = tempfile.mkdtemp(dir=self.tmp)
    self.config_file = os.path.join(self.base, 'models.config')
    self.server = None

  def tearDown(self):
    if self.server is not None:
      self.channel.close()
      self.server.stop(0)

  def add_version(self, model, version, src=None):
    # Copy then rename, as publishers do: a half-copied version must never be seen.
    tmp = os.path.join(self.base, f'.{model}-{version}.tmp')
    shutil.copytree(src or self.v1, tmp)
    os.makedirs(os.path.join(self.base, model), exist_ok=True)
    os.rename(tmp, os.path.join(self.base, model, str(version)))

  def write_config(self, *models, policy=''):
    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
      mc = config.model_config_list.config.add(name=name,
                                               base_path=os.path.join(self.base, name),
                                               model_platform='tensorflow')
      if policy:
        from google.protobuf import text_format
        text_format.Parse(policy, mc.model_version_policy)
    with open(self.config_file, 'w') as f:
      f.write(str(config))
    return config

  def start(self, poll=0.2):
    self.server = model_server.ModelServer(0, self.config_file, poll, 0.2)
    self.server.start()
    self.channel = grpc.insecure_channel(f'localhost:{self.server.port}')
    self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
    self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

  def status(self, name):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    reply = self.models.GetModelStatus(request, timeout=10)
    return {s.version: s.state for s in reply.model_version_status}

  def predict(self, name, x, signature='predict', version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
      request.model_spec.version.value = version
    request.inputs['x'].CopyFrom(tf.make_tensor_proto(x))
    return self.predictions.Predict(request, timeout=10)

  def test_predict_matches_in_process_model(self):
    self.add_version('m', 1)
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE})
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    reply = self.predict('m', x)
    self.assertEqual(reply.model_spec.version.value, 1)
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs['y']),
                               self.expected[1](x=tf.constant(x))['y'].numpy(),
                               rtol=1e-6)
    # The default signature takes strings.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'm'
    request.inputs['instances'].CopyFrom(tf.make_tensor_proto([b'a', b'b']))
    scores = tf.make_ndarray(self.predictions.Predict(request, timeout=10).outputs['scores'])
    self.assertEqual(scores.shape, (2,))
    self.assertTrue(np.all((scores > 0) & (scores < 1)))

  def test_metadata(self):
    self.add_version('m', 1)
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE})
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=['signature_def'])
    request.model_spec.name = 'm'
    reply = self.predictions.GetModelMetadata(request, timeout=10)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    reply.metadata['signature_def'].Unpack(sig_map)
    self.assertIn('predict', sig_map.signature_def)
    self.assertEqual(set(sig_map.signature_def['predict'].inputs), {'x'})

  def test_bad_requests_get_status_codes(self):
    self.add_version('m', 1)
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE})
    x = np.zeros((1, 4), np.float32)
    cases = [
        (lambda: self.predict('nope', x), grpc.StatusCode.NOT_FOUND, 'nope'),
        (lambda: self.predict('m', x, signature='nosig'), grpc.StatusCode.FAILED_PRECONDITION,
         'nosig'),
        (lambda: self.predict('m', x, version=7), grpc.StatusCode.NOT_FOUND, 'Specific(m, 7)'),
        (lambda: self.predict('m', np.zeros((1, 4), np.int32)),
         grpc.StatusCode.INVALID_ARGUMENT, 'Expects arg[x] to be float'),
        (lambda: self.status('nope'), grpc.StatusCode.NOT_FOUND, 'nope'),
    ]
    for call, code, text in cases:
      with self.assertRaises(grpc.RpcError) as ctx:
        call()
      self.assertEqual(ctx.exception.code(), code)
      self.assertIn(text, ctx.exception.details())

  def test_new_version_replaces_old_with_latest_policy(self):
    self.add_version('m', 1)
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE})
    self.add_version('m', 2, self.v2)
    wait_until(lambda: self.status('m') == {2: State.AVAILABLE, 1: State.END})
    x = np.ones((2, 4), np.float32)
    reply = self.predict('m', x)
    self.assertEqual(reply.model_spec.version.value, 2)
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs['y']),
                               self.expected[2](x=tf.constant(x))['y'].numpy(),
                               rtol=1e-6)

  def test_all_and_specific_policies(self):
    self.add_version('m', 1)
    self.add_version('m', 2, self.v2)
    self.write_config('m', policy='all {}')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE, 2: State.AVAILABLE})
    self.assertEqual(self.predict('m', np.ones((1, 4), np.float32), version=1)
                     .model_spec.version.value, 1)
    # The config file is polled: switching to a specific version unloads the other.
    self.write_config('m', policy='specific { versions: 1 }')
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE, 2: State.END})

  def test_reload_config_request_loads_and_unloads(self):
    self.add_version('a', 1)
    self.add_version('b', 3)
    self.write_config('a')
    self.start(poll=0)
    wait_until(lambda: self.status('a') == {1: State.AVAILABLE})
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name='b', base_path=os.path.join(self.base, 'b'))
    self.models.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=10)
    wait_until(lambda: self.status('b') == {3: State.AVAILABLE})
    wait_until(lambda: self._gone('a'))

  def _gone(self, name):
    try:
      return self.status(name) == {1: State.END}
    except grpc.RpcError as e:
      return e.code() == grpc.StatusCode.NOT_FOUND

  def test_missing_base_path_is_not_found_and_recovers(self):
    self.write_config('m')
    self.start()
    with self.assertRaises(grpc.RpcError) as ctx:
      self.status('m')
    self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)
    self.assertIn('does not exist', ctx.exception.details())
    self.add_version('m', 5)
    wait_until(lambda: not self._not_found('m') and self.status('m') == {5: State.AVAILABLE})
    # The version directory disappears: it is unloaded, the server keeps serving.
    shutil.rmtree(os.path.join(self.base, 'm', '5'))
    wait_until(lambda: self._not_found('m'))

  def _not_found(self, name):
    try:
      self.status(name)
      return False
    except grpc.RpcError as e:
      return e.code() == grpc.StatusCode.NOT_FOUND

  def test_broken_saved_model_ends_with_error(self):
    os.makedirs(os.path.join(self.base, 'm', '1'))
    with open(os.path.join(self.base, 'm', '1', 'saved_model.pb'), 'wb') as f:
      f.write(b'not a proto')
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.END})
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = 'm'
    status = self.models.GetModelStatus(request, timeout=10).model_version_status[0]
    self.assertNotEqual(status.status.error_code, 0)
    self.assertIn('loading', status.status.error_message)

  def test_malformed_config_file_is_kept_out_after_start(self):
    self.add_version('m', 1)
    self.write_config('m')
    self.start()
    wait_until(lambda: self.status('m') == {1: State.AVAILABLE})
    with open(self.config_file, 'w') as f:
      f.write('model_config_list { config { name: ')
    time.sleep(1)
    self.assertEqual(self.status('m'), {1: State.AVAILABLE})


class ModelServerProcessTest(unittest.TestCase):

  def run_server(self, *args):
    env = model_server.builtin_env()
    return subprocess.run(model_server.builtin_command(list(args)),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=120)

  def test_malformed_config_file_exits_1(self):
    with tempfile.NamedTemporaryFile('w', suffix='.config') as f:
      f.write('model_config_list { config { name: ')
      f.flush()
      proc = self.run_server('--port=0', f'--model_config_file={f.name}')
    self.assertEqual(proc.returncode, 1)
    self.assertIn('malformed ModelServerConfig', proc.stderr)
    self.assertIn(f.name, proc.stderr)

  def test_missing_config_file_exits_1(self):
    proc = self.run_server('--port=0', '--model_config_file=/nonexistent/models.config')
    self.assertEqual(proc.returncode, 1)
    self.assertIn('/nonexistent/models.config', proc.stderr)

  def test_builtin_command_keeps_only_supported_flags(self):
    cmd = model_server.builtin_command(
        ['--port=1', '--archon_port=2', '--model_config_file=x', '--enable_batching=true'])
    self.assertEqual(cmd[-2:], ['--port=1', '--model_config_file=x'])
    self.assertEqual(cmd[:4],
                     [sys.executable, '-P', '-m', 'monolith.agent_service.model_server'])

  def test_aspired_versions(self):
    policy = model_server_config_pb2.ModelConfig().model_version_policy
    self.assertEqual(model_server.aspired_versions(policy, [3, 1, 2]), [3])
    policy.latest.num_versions = 2
    self.assertEqual(model_server.aspired_versions(policy, [3, 1, 2]), [2, 3])
    policy.all.SetInParent()
    self.assertEqual(model_server.aspired_versions(policy, [3, 1, 2]), [1, 2, 3])
    policy.specific.versions.extend([2, 9])
    self.assertEqual(model_server.aspired_versions(policy, [3, 1, 2]), [2])


if __name__ == '__main__':
  unittest.main()
