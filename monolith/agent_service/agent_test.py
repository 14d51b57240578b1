"""End to end: the agent process started from the shipped demo conf serves Predict.

The agent runs as its own process (as `bazel run :agent` starts it) with the built-in model
server for ps and entry and the in-process ZooKeeper the demo conf names (`zk_servers fake`).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import grpc
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
import numpy as np
import psutil
import tensorflow as tf

from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from monolith.agent_service import agent_service_pb2 as pb
from monolith.agent_service import agent_service_pb2_grpc as pb_grpc
from monolith.agent_service import gen_saved_model
from monolith.agent_service import model_server
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.utils import find_free_port
from monolith.agent_service.zk_test_server import ZooKeeperTestServer

State = get_model_status_pb2.ModelVersionStatus.State
_PORT_ENVS = ('PORT', 'PORT2', 'PORT3', 'PORT4', 'PORT5', 'PORT6', 'PORT7')


def demo_conf_path() -> str:
  here = os.path.dirname(os.path.abspath(__file__))
  return os.path.join(here, 'testdata', 'demo', 'agent.conf')


def wait_until(cond, timeout, what):
  deadline = time.time() + timeout
  while time.time() < deadline:
    try:
      value = cond()
    except (grpc.RpcError, KazooException):
      value = None
    if value:
      return value
    time.sleep(0.3)
  raise AssertionError(f'{what} not reached in {timeout} s')


class AgentProcess:
  """The agent started with `conf`, on free ports given through the scheduler's PORT* vars."""

  def __init__(self, workdir: str, conf: str):
    self.ports = {name: find_free_port() for name in _PORT_ENVS}
    env = model_server.builtin_env()
    env.update({name: str(port) for name, port in self.ports.items()})
    env.pop('MONOLITH_TFS_BINARY', None)
    self.log = os.path.join(workdir, 'agent.log')
    self._log_file = open(self.log, 'w')
    self.proc = subprocess.Popen(model_server.python_module_command(
        'monolith.agent_service.agent',
        [f'--conf={conf}', f'--tfs_log={workdir}/logs/tfs.std.log']),
                                 env=env,
                                 stdout=self._log_file,
                                 stderr=subprocess.STDOUT)

  @property
  def agent_port(self):
    return self.ports['PORT2']

  @property
  def entry_port(self):
    return self.ports['PORT']

  @property
  def ps_port(self):
    return self.ports['PORT5']

  def output(self) -> str:
    with open(self.log) as f:
      return f.read()

  def stop(self):
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(20)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self._log_file.close()


def model_state(port: int, name: str):
  with grpc.insecure_channel(f'localhost:{port}') as channel:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=5)
    return {s.version: s.state for s in reply.model_version_status}


class DemoAgentTest(unittest.TestCase):
  """The shipped demo conf as is: in-process ZooKeeper."""

  @classmethod
  def zk_servers(cls):
    return 'fake'

  @classmethod
  def setUpClass(cls):
    cls.workdir = tempfile.mkdtemp()
    cls.base_path = gen_saved_model.export_demo_models(os.path.join(cls.workdir, 'saved_model'),
                                                       ('entry', 'ps_0'))
    # The shipped conf with only its paths (and ZooKeeper for the subclass) changed.
    with open(demo_conf_path()) as f:
      text = f.read()
    text = re.sub(r'(?m)^zk_servers .*$', f'zk_servers {cls.zk_servers()}', text)
    text = re.sub(r'(?m)^base_path .*$', f'base_path {cls.base_path}', text)
    text = re.sub(r'(?m)^platform_config_file .*$',
                  f'platform_config_file {cls.workdir}/platform_config_file.cfg', text)
    cls.conf = os.path.join(cls.workdir, 'agent.conf')
    with open(cls.conf, 'w') as f:
      f.write(text)
    cls.agent = AgentProcess(cls.workdir, cls.conf)

  @classmethod
  def tearDownClass(cls):
    cls.agent.stop()
    shutil.rmtree(cls.workdir)

  def wait_serving(self):
    agent = self.agent
    try:
      wait_until(lambda: model_state(agent.entry_port, 'entry') == {1: State.AVAILABLE}, 180,
                 'entry AVAILABLE')
    except AssertionError:
      self.fail(f'agent output:\n{agent.output()}')

  def test_1_serves_predict_and_heartbeat(self):
    self.wait_serving()
    self.assertEqual(model_state(self.agent.ps_port, 'ps_0'), {1: State.AVAILABLE})
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    with grpc.insecure_channel(f'localhost:{self.agent.entry_port}') as channel:
      request = predict_pb2.PredictRequest()
      request.model_spec.name = 'entry'
      request.model_spec.signature_name = 'predict'
      request.inputs['x'].CopyFrom(tf.make_tensor_proto(x))
      reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request,
                                                                                  timeout=10)
    expected = tf.saved_model.load(os.path.join(self.base_path, 'entry', '1'))
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs['y']),
                               expected.signatures['predict'](x=tf.constant(x))['y'].numpy(),
                               rtol=1e-6)

    # The replica registry behind the AgentService saw ps reach AVAILABLE.
    with grpc.insecure_channel(f'localhost:{self.agent.agent_port}') as channel:
      stub = pb_grpc.AgentServiceStub(channel)
      hb = wait_until(
          lambda: stub.HeartBeat(pb.HeartBeatRequest(server_type=pb.ServerType.PS), timeout=5)
          .addresses, 30, 'ps replica in HeartBeat')
      self.assertEqual(list(hb), ['ps:0'])
      addrs = list(hb['ps:0'].address)
      self.assertEqual(len(addrs), 1)
      self.assertTrue(addrs[0].endswith(f':{self.agent.ps_port}'), addrs)
      replicas = stub.GetReplicas(pb.GetReplicasRequest(server_type=pb.ServerType.PS, task=0),
                                  timeout=5)
      self.assertEqual(list(replicas.address_list.address), list(hb['ps:0'].address))

  def test_2_killed_model_server_takes_the_agent_down(self):
    self.wait_serving()
    children = psutil.Process(self.agent.proc.pid).children()
    servers = [c for c in children if 'monolith.agent_service.model_server' in c.cmdline()]
    self.assertEqual(len(servers), 2, [c.cmdline() for c in children])
    servers[0].kill()
    start = time.time()
    returncode = self.agent.proc.wait(30)
    self.assertNotEqual(returncode, 0)
    self.assertLess(time.time() - start, 15)
    # The surviving model server was killed with it.
    psutil.wait_procs(servers, timeout=10)
    self.assertFalse(any(s.is_running() and s.status() != psutil.STATUS_ZOMBIE for s in servers))


class DemoAgentRealZKTest(DemoAgentTest):
  """The same agent registering in a real ZooKeeper."""

  @classmethod
  def zk_servers(cls):
    cls.zk_server = ZooKeeperTestServer()
    cls.zk_server.start()
    return cls.zk_server.hosts

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    cls.zk_server.close()

  def replica_states(self, zk):
    states = {}
    root = '/demo/service/demo'
    for task in zk.get_children(root):
      for replica in zk.get_children(f'{root}/{task}'):
        meta = ReplicaMeta.deserialize(zk.get(f'{root}/{task}/{replica}')[0])
        states[task] = meta.stat
    return states

  def test_1b_replicas_in_zookeeper_and_a_vanishing_model(self):
    self.wait_serving()
    zk = KazooClient(hosts=self.zk_server.hosts)
    zk.start()
    try:
      wait_until(lambda: self.replica_states(zk) == {
          'ps:0': ModelState.AVAILABLE,
          'entry:0': ModelState.AVAILABLE
      }, 30, 'replicas AVAILABLE in ZooKeeper')
      # The entry version directory disappears: NOT_FOUND, the agent keeps running.
      version_dir = os.path.join(self.base_path, 'entry', '1')
      shutil.move(version_dir, os.path.join(self.workdir, 'entry_1_moved'))
      wait_until(lambda: _not_found(self.agent.entry_port, 'entry'), 30, 'entry NOT_FOUND')
      time.sleep(2)
      self.assertIsNone(self.agent.proc.poll(), self.agent.output()[-3000:])
      shutil.move(os.path.join(self.workdir, 'entry_1_moved'), version_dir)
      self.wait_serving()
    finally:
      zk.stop()


def _not_found(port, name):
  try:
    model_state(port, name)
    return False
  except grpc.RpcError as e:
    return e.code() == grpc.StatusCode.NOT_FOUND


class DenseMultiProcessTest(unittest.TestCase):
  """deploy_type dense with dense_service_num 2: one agent process (and model server) each."""

  def test_two_dense_services(self):
    with tempfile.TemporaryDirectory() as workdir:
      base_path = gen_saved_model.export_demo_models(os.path.join(workdir, 'models'),
                                                     ('dense_0',))
      conf = os.path.join(workdir, 'agent.conf')
      with open(conf, 'w') as f:
        f.write(f'bzid demo\nbase_name demo\nbase_path {base_path}\ndeploy_type dense\n'
                f'dense_alone true\ndense_service_num 2\nzk_servers fake\n'
                f'update_model_status_interval 1\n'
                f'platform_config_file {workdir}/platform_config_file.cfg\n')
      agent = AgentProcess(workdir, conf)
      try:
        tree = psutil.Process(agent.proc.pid)

        def server_ports():
          ports = []
          for child in tree.children(recursive=True):
            cmdline = child.cmdline()
            if 'monolith.agent_service.model_server' in cmdline:
              ports += [int(a.split('=')[1]) for a in cmdline if a.startswith('--port=')]
          return sorted(ports) if len(ports) == 2 else None

        try:
          ports = wait_until(server_ports, 120, 'two dense model servers')
        except AssertionError:
          self.fail(f'agent output:\n{agent.output()[-5000:]}')
        # The first dense service takes the scheduler's PORT, the second a free port.
        self.assertIn(agent.ports['PORT'], ports)
        for port in ports:
          wait_until(lambda p=port: model_state(p, 'dense_0') == {1: State.AVAILABLE}, 120,
                     f'dense_0 AVAILABLE on {port}')
        with open(os.path.join(workdir, 'logs', 'dense_tfs.std.log.mps1')) as f:
          self.assertIn('Successfully loaded servable version', f.read())
        # SIGTERM to the parent reaches every dense agent, which takes its model server down.
        descendants = tree.children(recursive=True)
        agent.proc.send_signal(signal.SIGTERM)
        agent.proc.wait(30)
        _, alive = psutil.wait_procs(descendants, timeout=30)
        self.assertEqual(alive, [])
      finally:
        if agent.proc.poll() is None:  # a failed check left the tree running
          procs = [tree] + tree.children(recursive=True)
          for p in procs:
            p.kill()
          psutil.wait_procs(procs, timeout=20)
        agent.stop()


class BadConfTest(unittest.TestCase):

  def run_agent(self, *args, conf_text=None):
    with tempfile.TemporaryDirectory() as tmp:
      if conf_text is not None:
        conf = os.path.join(tmp, 'agent.conf')
        with open(conf, 'w') as f:
          f.write(conf_text)
        args = args + (f'--conf={conf}',)
      return subprocess.run(
          model_server.python_module_command('monolith.agent_service.agent',
                                             [f'--tfs_log={tmp}/tfs.log'] + list(args)),
          env=model_server.builtin_env(),
          capture_output=True,
          text=True,
          timeout=120)

  def conf(self, **overrides):
    with open(demo_conf_path()) as f:
      text = f.read()
    for key, value in overrides.items():
      text = re.sub(rf'(?m)^{key} .*$', f'{key} {value}', text)
    return re.sub(r'(?m)^platform_config_file .*$', '', text)

  def assert_fails(self, proc, message):
    self.assertEqual(proc.returncode, 1, proc.stderr[-2000:])
    self.assertIn(message, proc.stderr)

  def test_missing_conf(self):
    proc = self.run_agent()
    self.assert_fails(proc, '--conf is required')
    self.assertIn('--tfs_log', proc.stderr)  # the help text

  def test_unknown_conf_file(self):
    self.assert_fails(self.run_agent('--conf=/nonexistent/agent.conf'),
                      "agent conf file '/nonexistent/agent.conf' does not exist")

  def test_agent_version_2(self):
    self.assert_fails(self.run_agent(conf_text=self.conf(agent_version=2)),
                      'agent_version v2 is not support')

  def test_agent_version_9(self):
    self.assert_fails(self.run_agent(conf_text=self.conf(agent_version=9)),
                      'agent_version error: 9')

  def test_unknown_deploy_type(self):
    self.assert_fails(self.run_agent(conf_text=self.conf(deploy_type='sideways')), 'sideways')


if __name__ == '__main__':
  unittest.main()
