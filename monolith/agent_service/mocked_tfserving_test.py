"""FakeTFServing over loopback gRPC: its version state machine, policies and reloads."""

import threading
import time
import unittest

import grpc

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from monolith.agent_service import utils
from monolith.agent_service.data_def import ModelState
from monolith.agent_service.mocked_tfserving import FakeTFServing

MODEL_NAME = 'test_model_test'
BASE_PATH = '/tmp/test_model/monolith'


def wait_until(cond, timeout=10):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if cond():
      return
    time.sleep(0.05)
  raise AssertionError(f'condition not met in {timeout} s')


class MockedTFSTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    cls.port = utils.find_free_port()
    cls.server = FakeTFServing(MODEL_NAME, BASE_PATH, num_versions=2, port=cls.port)
    cls.thread = threading.Thread(target=cls.server.start, daemon=True)
    cls.thread.start()
    assert cls.server.wait_until_started()
    cls.channel = grpc.insecure_channel(f'localhost:{cls.port}')
    cls.model_stub = model_service_pb2_grpc.ModelServiceStub(cls.channel)
    cls.predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(cls.channel)

  @classmethod
  def tearDownClass(cls):
    cls.channel.close()
    cls.server.stop()
    cls.thread.join()

  def states(self, name, version=None):
    request = get_model_status_pb2.GetModelStatusRequest(
        model_spec=utils.gen_model_spec(name, version, signature_name='predict'))
    reply = self.model_stub.GetModelStatus(request, timeout=5)
    self.assertIsInstance(reply, get_model_status_pb2.GetModelStatusResponse)
    return {s.version: (s.state, s.status.error_code) for s in reply.model_version_status}

  def reload(self, *configs):
    request = model_management_pb2.ReloadConfigRequest()
    request.config.model_config_list.config.extend(configs)
    reply = self.model_stub.HandleReloadConfigRequest(request, timeout=5)
    self.assertIsInstance(reply, model_management_pb2.ReloadConfigResponse)
    self.assertEqual(reply.status.error_code, 0)

  def test_get_model_status(self):
    wait_until(lambda: self.states(MODEL_NAME) == {
        1: (ModelState.AVAILABLE, 0),
        2: (ModelState.AVAILABLE, 0)
    })
    self.assertEqual(self.states(MODEL_NAME, 1), {1: (ModelState.AVAILABLE, 0)})
    self.assertEqual(self.states(MODEL_NAME, 9), {-1: (ModelState.UNKNOWN, 5)})
    self.assertEqual(self.states('no_such_model'), {-1: (ModelState.UNKNOWN, 5)})

  def test_get_model_metadata(self):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=utils.gen_model_spec(MODEL_NAME, 2, signature_name='predict'),
        metadata_field=['base_path', 'num_versions', 'signature_name'])
    reply = self.predict_stub.GetModelMetadata(request, timeout=5)
    self.assertIsInstance(reply, get_model_metadata_pb2.GetModelMetadataResponse)
    self.assertEqual(reply.metadata['base_path'].value, repr(BASE_PATH).encode())
    self.assertEqual(reply.metadata['signature_name'].value, b"('update', 'predict')")
    self.assertNotIn('num_versions', reply.metadata)  # not a field of the fake's model conf

  def test_handle_reload_config_request(self):
    self.reload(
        utils.gen_model_config('test_model', '/tmp/test_model/monolith/ps_0', 'specific', [3, 5]),
        utils.gen_model_config('test_model_b', '/tmp/test_model/monolith/ps_1', 'latest', 1))
    wait_until(lambda: self.states('test_model') == {
        3: (ModelState.AVAILABLE, 0),
        5: (ModelState.AVAILABLE, 0)
    })
    wait_until(lambda: self.states('test_model_b') == {1: (ModelState.AVAILABLE, 0)})
    # Models missing from the new config are unloaded; MODEL_NAME went away with the first reload.
    wait_until(lambda: self.states(MODEL_NAME) == {-1: (ModelState.UNKNOWN, 5)})
    self.reload(utils.gen_model_config('test_model_b', '/tmp/test_model/monolith/ps_1'))
    wait_until(lambda: self.states('test_model') == {-1: (ModelState.UNKNOWN, 5)})
    self.assertEqual(self.states('test_model_b'), {1: (ModelState.AVAILABLE, 0)})


class StateMachineTest(unittest.TestCase):

  def test_versions_move_through_states_and_latest_retires_oldest(self):
    server = FakeTFServing('m', '/tmp/m', num_versions=1, port=0)
    mgr = server.model_mgr
    seen = set()
    mgr.start()
    try:
      spec = utils.gen_model_spec('m')

      def available():
        states = {s.version: s.state for s in mgr.get_status(spec)}
        seen.update(states.values())
        return states == {1: ModelState.AVAILABLE}

      wait_until(available)
      mgr._add_random_version()  # version 2 arrives; latest(1) retires version 1
      wait_until(lambda: {s.version: s.state for s in mgr.get_status(spec)} ==
                 {2: ModelState.AVAILABLE})
    finally:
      mgr.stop()
    self.assertIn(ModelState.AVAILABLE, seen)


if __name__ == '__main__':
  unittest.main()
