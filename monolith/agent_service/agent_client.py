"""Operator CLI of the agent: AgentService calls and ZooKeeper inspection/mutation.

  agent_client --conf=agent.conf --cmd_type=hb --server_type=ps      # HeartBeat
  agent_client --conf=agent.conf --cmd_type=gr --server_type=ps --task=0
  agent_client --conf=agent.conf --cmd_type=addr                     # replicas in ZooKeeper
  agent_client --conf=agent.conf --cmd_type=get --args=res|pub|portal|lock|elect|info
  agent_client --conf=agent.conf --cmd_type=load|unload|clean ...
"""

import os
import re
import socket
import sys

from absl import flags
import grpc
from kazoo.exceptions import NoNodeError, NodeExistsError

from monolith import utils
from monolith.agent_service import client  # defines the shared client flags
from monolith.agent_service.agent_service_pb2 import GetReplicasRequest, \
  HeartBeatRequest, ServerType
from monolith.agent_service.agent_service_pb2_grpc import AgentServiceStub
from monolith.agent_service.data_def import ModelMeta, ModelState, ReplicaMeta
from monolith.agent_service.utils import AgentConfig
from monolith.native_training import env_utils
from monolith.native_training.zk_utils import MonolithKazooClient

FLAGS = flags.FLAGS
flags.DEFINE_integer('port', 0, 'AgentService port; 0 takes agent_port from --conf.')
flags.DEFINE_string('args', None, 'Argument of cmd_type get/clean: addr, info, res, pub, '
                    'portal, lock, elect.')
flags.DEFINE_string('server_type', 'entry', 'ps, entry or dense.')
flags.DEFINE_integer('task', 0, 'Task (shard) index for gr.')
flags.DEFINE_string('model_dir', None, 'Export base dir for load / get info.')
flags.DEFINE_string('ckpt', None, 'Checkpoint name for load / get info, e.g. model.ckpt-1234.')
flags.DEFINE_integer('num_shard', -1, 'Number of shards for load.')

TASK = r'^(\w+):(\d+)$'
_ZK_DIRS = {
    'res': 'resource',
    'pub': 'publish',
    'portal': 'portal',
    'lock': 'lock',
    'elect': 'election'
}


def _zk(agent_conf: AgentConfig) -> MonolithKazooClient:
  zk = MonolithKazooClient(hosts=agent_conf.zk_servers)
  zk.start()
  return zk


def _print_replica_addrs(agent_conf: AgentConfig, model_name: str):
  zk = _zk(agent_conf)
  try:
    root = f'/{agent_conf.bzid}/service/{model_name}'
    lines = []
    try:
      for child in zk.get_children(root):
        # dc-aware trees have an `idc:cluster` level above `server_type:task`.
        tasks = [child] if re.match(TASK, child) else [
            f'{child}/{t}' for t in zk.get_children(f'{root}/{child}')
        ]
        for task in tasks:
          for replica in zk.get_children(f'{root}/{task}'):
            path = f'{root}/{task}/{replica}'
            data, _ = zk.get(path)
            meta = ReplicaMeta.deserialize(data)
            lines.append(f'{path} {meta.archon_address} {meta.address} '
                         f'{ModelState.Name(meta.stat)}')
    except NoNodeError:
      print(f'{model_name} has not load !')
      return
    for line in sorted(lines):
      print(line)
  finally:
    zk.stop()


def _print_zk_dir(agent_conf: AgentConfig, args: str):
  zk = _zk(agent_conf)
  try:
    path = f'/{agent_conf.bzid}/{_ZK_DIRS[args]}'
    if not zk.exists(path):
      print(f'no {args} found !')
      return
    values = {}
    for child in zk.get_children(path):
      data, _ = zk.get(f'{path}/{child}')
      values[child] = data.decode('utf-8', errors='replace') if data else ''
    for key in sorted(values):
      print(key, values[key])
  finally:
    zk.stop()


def main(argv):
  del argv
  env_utils.setup_hdfs_env()
  if not FLAGS.conf:
    print('agent_client: --conf is required', file=sys.stderr)
    return 1
  agent_conf = AgentConfig.from_file(FLAGS.conf)
  if FLAGS.port != 0:
    agent_conf.agent_port = FLAGS.port
  host = os.environ.get('MY_HOST_IP') or socket.gethostbyname(socket.gethostname())
  stub = AgentServiceStub(grpc.insecure_channel(f'{host}:{agent_conf.agent_port}'))
  model_name = agent_conf.base_name or FLAGS.model_name
  server_type = {
      'ps': ServerType.PS,
      'dense': ServerType.DENSE
  }.get(FLAGS.server_type, ServerType.ENTRY)

  cmd_type, args = FLAGS.cmd_type, FLAGS.args
  try:
    if cmd_type == 'hb':
      resp = stub.HeartBeat(HeartBeatRequest(server_type=server_type), timeout=10)
      for key in sorted(resp.addresses):
        addrs = list(resp.addresses[key].address)
        print(key, len(addrs), addrs)
    elif cmd_type == 'gr':
      assert model_name, 'gr needs a model name (base_name in --conf or --model_name)'
      resp = stub.GetReplicas(GetReplicasRequest(server_type=server_type,
                                                 task=FLAGS.task,
                                                 model_name=model_name),
                              timeout=10)
      print(list(resp.address_list.address))
    elif cmd_type == 'addr' or (cmd_type == 'get' and args == 'addr'):
      _print_replica_addrs(agent_conf, model_name)
    elif cmd_type == 'get' and args == 'info':
      from monolith.agent_service.resource_utils import cal_model_info_v2
      print(cal_model_info_v2(FLAGS.model_dir, FLAGS.ckpt))
    elif cmd_type == 'get' and args in _ZK_DIRS:
      _print_zk_dir(agent_conf, args)
    elif cmd_type == 'load':
      assert model_name, 'load needs a model name (base_name in --conf or --model_name)'
      meta = ModelMeta(model_name=model_name,
                       model_dir=FLAGS.model_dir,
                       ckpt=FLAGS.ckpt,
                       num_shard=FLAGS.num_shard)
      zk = _zk(agent_conf)
      try:
        path = f'/{agent_conf.bzid}/portal/{model_name}'
        try:
          zk.create(path, meta.serialize(), makepath=True)
        except NodeExistsError:
          zk.set(path, meta.serialize())
      finally:
        zk.stop()
    elif cmd_type == 'unload':
      zk = _zk(agent_conf)
      try:
        zk.delete(f'/{agent_conf.bzid}/portal/{model_name}')
      except Exception:  # pylint: disable=broad-except
        pass  # unloading something that is not loaded is fine
      finally:
        zk.stop()
    elif cmd_type == 'clean':
      dirs = [d.strip() for d in (args or 'portal,publish,service,resource').split(',')]
      zk = _zk(agent_conf)
      try:
        for d in dirs:
          path = f'/{agent_conf.bzid}/{_ZK_DIRS.get(d, d)}'
          for child in (zk.get_children(path) if zk.exists(path) else []):
            zk.delete(f'{path}/{child}', recursive=True)
      finally:
        zk.stop()
    else:
      print(f'agent_client: unknown cmd_type {cmd_type!r} (args {args!r})', file=sys.stderr)
      return 1
  except grpc.RpcError as e:
    print(f'agent_client: {cmd_type} to {host}:{agent_conf.agent_port} failed: '
          f'{e.code().name}: {e.details()}', file=sys.stderr)
    return 2
  return 0


def cli():
  utils.run_cli(main, __name__, client.__name__, 'monolith.agent_service.utils')


if __name__ == '__main__':
  cli()
