"""Serving-agent latencies, each next to its peer in the same run.

* HeartBeat through the AgentService (ReplicaWatcher over 1,000 / 10,000 registered replicas)
  vs. the same reply bytes from a bare gRPC handler (the transport's own cost).
* Predict through the built-in model server (its own process, loopback gRPC) vs. calling the
  same SavedModel signature in process, batch 8 and 256.

  bazel run //benchmarks:agent_service_benchmark -- [--requests=2000]
"""

import os
import subprocess
import sys
import tempfile
import time
from concurrent import futures

from absl import app, flags
import grpc
import numpy as np
import tensorflow as tf

from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from monolith.agent_service import agent_service_pb2 as pb
from monolith.agent_service import agent_service_pb2_grpc as pb_grpc
from monolith.agent_service import gen_saved_model
from monolith.agent_service import model_server
from monolith.agent_service.agent_service import AgentService
from monolith.agent_service.data_def import ModelState, ReplicaMeta
from monolith.agent_service.mocked_zkclient import FakeKazooClient
from monolith.agent_service.replica_manager import ReplicaWatcher
from monolith.agent_service.utils import AgentConfig, find_free_port

FLAGS = flags.FLAGS
flags.DEFINE_integer('requests', 2000, 'Timed requests per measurement.')
flags.DEFINE_integer('warmup', 100, 'Untimed requests before each measurement.')


def measure_pair(ours, peer, requests, warmup):
  """p50/p99 ms of both calls, interleaved so that both see the same machine load."""
  for _ in range(warmup):
    ours()
    peer()
  latencies = np.empty((2, requests))
  for i in range(requests):
    for j, call in enumerate((ours, peer)):
      start = time.perf_counter()
      call()
      latencies[j, i] = (time.perf_counter() - start) * 1000
  return [(np.percentile(l, 50), np.percentile(l, 99)) for l in latencies]


def report(name, ours, peer_name, peer):
  print(f'{name:<34} p50 {ours[0]:8.3f} ms  p99 {ours[1]:8.3f} ms | {peer_name:<22} '
        f'p50 {peer[0]:8.3f} ms  p99 {peer[1]:8.3f} ms | ratio p50 {ours[0] / peer[0]:5.2f}x '
        f'p99 {ours[1] / peer[1]:5.2f}x | added p99 {ours[1] - peer[1]:7.3f} ms',
        flush=True)


class _CannedHeartBeat(pb_grpc.AgentServiceServicer):
  """The peer: a handler returning a prebuilt reply, i.e. gRPC + serialization only."""

  def __init__(self, reply):
    self._reply = reply

  def HeartBeat(self, request, context):
    return self._reply


def bench_heartbeat(num_replicas: int):
  num_ps, per_task = num_replicas // 10, 10
  os.environ.pop('TCE_INTERNAL_IDC', None)
  conf = AgentConfig(bzid='bench', base_name='model', deploy_type='ps', num_ps=num_ps,
                     platform_config_file=os.path.join(tempfile.gettempdir(), 'bench.cfg'))
  zk = FakeKazooClient()
  zk.start()
  for task in range(num_ps):
    for replica in range(per_task):
      meta = ReplicaMeta(address=f'10.{task // 250}.{task % 250}.{replica}:9000',
                         stat=ModelState.AVAILABLE)
      zk.create(f'{conf.path_prefix}/ps:{task}/{replica}', meta.serialize(), ephemeral=True,
                makepath=True)
  watcher = ReplicaWatcher(zk, conf)
  watcher.watch_data()
  service = AgentService(watcher, port=0, conf=conf)
  service.start()
  channel = grpc.insecure_channel(f'localhost:{service.port}')
  stub = pb_grpc.AgentServiceStub(channel)
  request = pb.HeartBeatRequest(server_type=pb.ServerType.PS)
  reply = stub.HeartBeat(request)
  assert sum(len(v.address) for v in reply.addresses.values()) == num_replicas, reply

  peer_server = grpc.server(futures.ThreadPoolExecutor(max_workers=10))
  pb_grpc.add_AgentServiceServicer_to_server(_CannedHeartBeat(reply), peer_server)
  peer_port = peer_server.add_insecure_port('[::]:0')
  peer_server.start()
  peer_channel = grpc.insecure_channel(f'localhost:{peer_port}')
  peer_stub = pb_grpc.AgentServiceStub(peer_channel)

  ours, peer = measure_pair(lambda: stub.HeartBeat(request), lambda: peer_stub.HeartBeat(request),
                            FLAGS.requests, FLAGS.warmup)
  report(f'HeartBeat, {num_replicas} replicas', ours, 'canned gRPC reply', peer)
  for c in (channel, peer_channel):
    c.close()
  peer_server.stop(0)
  service.stop(0)
  watcher.stop()
  zk.stop()


def bench_predict(tmp: str):
  base = gen_saved_model.export_demo_models(os.path.join(tmp, 'models'), ('m',))
  config = os.path.join(tmp, 'models.config')
  with open(config, 'w') as f:
    f.write(f'model_config_list {{ config {{ name: "m" base_path: "{base}/m" '
            'model_platform: "tensorflow" } }')
  port = find_free_port()
  proc = subprocess.Popen(
      model_server.builtin_command([f'--port={port}', f'--model_config_file={config}']),
      env=model_server.builtin_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    channel = grpc.insecure_channel(f'localhost:{port}')
    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = 'm'
    deadline = time.time() + 120
    while True:
      try:
        states = [s.state for s in status_stub.GetModelStatus(status_request, timeout=2)
                  .model_version_status]
        if states == [get_model_status_pb2.ModelVersionStatus.AVAILABLE]:
          break
      except grpc.RpcError:
        pass
      if time.time() > deadline:
        raise RuntimeError('the model server did not load the model')
      time.sleep(0.2)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    in_process = tf.saved_model.load(os.path.join(base, 'm', '1')).signatures['predict']
    rng = np.random.default_rng(0)
    for batch in (8, 256):
      x = rng.normal(size=(batch, gen_saved_model.INPUT_DIM)).astype(np.float32)
      request = predict_pb2.PredictRequest()
      request.model_spec.name = 'm'
      request.model_spec.signature_name = 'predict'
      request.inputs['x'].CopyFrom(tf.make_tensor_proto(x))
      served = tf.make_ndarray(stub.Predict(request, timeout=10).outputs['y'])
      np.testing.assert_allclose(served, in_process(x=tf.constant(x))['y'].numpy(), rtol=1e-6)
      ours, peer = measure_pair(lambda: stub.Predict(request, timeout=10),
                                lambda: in_process(x=tf.constant(x))['y'].numpy(),
                                FLAGS.requests, FLAGS.warmup)
      report(f'Predict built-in server, batch {batch}', ours, 'same model in process', peer)
    channel.close()
  finally:
    proc.terminate()
    proc.wait()


def main(argv):
  del argv
  sys.setswitchinterval(model_server.GIL_SWITCH_INTERVAL_S)  # as the agent process does
  print(f'{FLAGS.requests} timed requests each (ours and peer interleaved), after '
        f'{FLAGS.warmup} warm-up requests; {os.cpu_count()} CPUs, load average '
        f'{os.getloadavg()[0]:.1f}', flush=True)
  for num_replicas in (1000, 10000):
    bench_heartbeat(num_replicas)
  with tempfile.TemporaryDirectory() as tmp:
    bench_predict(tmp)


if __name__ == '__main__':
  app.run(main)
