"""Operator CLI for agent-v2 deployments: load/unload a model through the ZooKeeper portal and
show where it is published and served.

  client --zk_servers=h:2181 --bzid=b --model_name=m --cmd_type=load --model_dir=/exported
  client --zk_servers=h:2181 --bzid=b --model_name=m --cmd_type=status

Also defines the flags shared by agent_client and tfs_client (cmd_type, zk_servers, bzid,
model_name, target, input_type, input_file).
Exit codes: 0 done, 1 the request failed (e.g. the model is already loaded), 2 bad flags.
"""

from dataclasses import dataclass, field
from typing import Dict

from absl import flags, logging
from kazoo.exceptions import NoNodeError

from monolith import utils
from monolith.agent_service.data_def import ModelMeta, ReplicaMeta
from monolith.agent_service.zk_mirror import ZKMirror
from monolith.native_training import env_utils
from monolith.native_training.zk_utils import MonolithKazooClient

FLAGS = flags.FLAGS

flags.DEFINE_enum('cmd_type', 'status',
                  ['hb', 'gr', 'addr', 'get', 'clean', 'load', 'unload', 'meta', 'status',
                   'profile'], 'What to do.')
flags.DEFINE_string('zk_servers', None, 'ZooKeeper servers, host:port[,host:port...].')
flags.DEFINE_string('bzid', None, 'Business id: the ZooKeeper root of the deployment.')
flags.DEFINE_string('model_name', None, 'Model name.')
flags.DEFINE_string('target', None, 'host:port of a model server.')
flags.DEFINE_string('input_type', 'json', 'Request file format: json, pbtext, dump or pb.')
flags.DEFINE_string('input_file', None, 'Request file.')
# agent_client defines these too; allow_override lets both modules be imported together.
flags.DEFINE_string('model_dir', None, 'Export base dir, for load.', allow_override=True)
flags.DEFINE_string('ckpt', None, 'Checkpoint name for load, e.g. model.ckpt-1234.',
                    allow_override=True)
flags.DEFINE_integer('num_shard', -1, 'Number of shards for load.', allow_override=True)


@dataclass
class LoadSate:
  """Where a model stands (the typo is the upstream public name)."""
  portal: bool = False
  publish: bool = False
  service: Dict[str, int] = field(default_factory=dict)


class ServingClient(object):

  def __init__(self, zk_servers: str, bzid: str, zk=None):
    self._zk = zk if zk is not None else MonolithKazooClient(hosts=zk_servers)
    self._bzid = bzid
    self._mirror = ZKMirror(self._zk, bzid)
    self._mirror.start(is_client=True)

  def load(self, model_name: str, model_dir: str, ckpt: str = None, num_shard: int = -1):
    meta = ModelMeta(model_name=model_name, model_dir=model_dir, ckpt=ckpt, num_shard=num_shard)
    path = meta.get_path(self._mirror.portal_base_path)
    if self._mirror.exists(path):
      raise RuntimeError('{} has exists'.format(model_name))
    self._mirror.create(path, meta.serialize(), makepath=True)

  def unload(self, model_name: str):
    path = '{}/{}'.format(self._mirror.portal_base_path, model_name)
    if self._mirror.exists(path):
      self._mirror.delete(path)
    else:
      logging.warning('%s is not loaded (no %s)', model_name, path)

  def get_status(self, model_name: str) -> LoadSate:
    state = LoadSate()
    state.portal = bool(self._zk.exists('{}/{}'.format(self._mirror.portal_base_path,
                                                       model_name)))
    try:
      published = self._zk.get_children(self._mirror.publish_base_path)
    except NoNodeError:
      published = []
    state.publish = any(
        len(name.split(':', 2)) == 3 and name.split(':', 2)[2] == model_name
        for name in published)
    model_path = '{}/{}'.format(self._mirror.service_base_path, model_name)
    try:
      tasks = self._zk.get_children(model_path)
    except NoNodeError:
      tasks = []
    for task in sorted(tasks):
      try:
        replicas = self._zk.get_children('{}/{}'.format(model_path, task))
      except NoNodeError:
        continue
      for replica in sorted(replicas):
        path = '{}/{}/{}'.format(model_path, task, replica)
        try:
          data, _ = self._zk.get(path)
          state.service['{}:{}'.format(task, replica)] = ReplicaMeta.deserialize(data).stat
        except NoNodeError:
          continue
        except Exception as e:
          logging.error('invalid ReplicaMeta in %s: %s, skipped', path, e)
    return state

  def stop(self):
    self._mirror.stop()


def main(argv):
  del argv
  env_utils.setup_host_ip()
  if not FLAGS.zk_servers or not FLAGS.bzid:
    logging.error('--zk_servers and --bzid are required')
    return 2
  if not FLAGS.model_name:
    logging.error('--model_name is required')
    return 2
  if FLAGS.cmd_type == 'load' and not FLAGS.model_dir:
    logging.error('--model_dir is required for load')
    return 2
  client = ServingClient(FLAGS.zk_servers, FLAGS.bzid)
  try:
    if FLAGS.cmd_type == 'load':
      client.load(FLAGS.model_name, FLAGS.model_dir, FLAGS.ckpt, FLAGS.num_shard)
    elif FLAGS.cmd_type == 'unload':
      client.unload(FLAGS.model_name)
    else:  # every other cmd_type (they belong to agent_client) shows the status
      print(client.get_status(FLAGS.model_name))
  except RuntimeError as e:
    logging.error('%s', e)
    return 1
  finally:
    client.stop()
  return 0


def cli():
  """Console-script entry point (`monolith-serving-client`)."""
  utils.run_cli(main, __name__)


if __name__ == '__main__':
  cli()
