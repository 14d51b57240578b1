"""Operator CLI for agent-v3 deployments (everything lives in ZooKeeper under /{bzid}).

  agent_controller --zk_servers=h:2181 --bzid=b --cmd=decl --export_base=/exported [--model_name=m]
  agent_controller --zk_servers=h:2181 --bzid=b --cmd=pub --layout=l --model_name='m:ps_*'
  agent_controller --zk_servers=h:2181 --bzid=b --cmd=unpub --layout=l --model_name='m:entry'
  agent_controller --zk_servers=h:2181 --bzid=b --cmd=bzid_info

Exit codes: 0 done, 1 the command failed, 2 bad flags.
"""

import fnmatch
import json
import os
from typing import Optional

from absl import flags, logging
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from monolith import utils
from monolith.agent_service.backends import (CtrlBackend, SavedModel, SavedModelDeployConfig,
                                             ZKBackend)
from monolith.native_training import env_utils

FLAGS = flags.FLAGS

_CMDS = ('decl', 'pub', 'unpub', 'bzid_info')

flags.DEFINE_string('zk_servers', None, 'ZooKeeper servers, host:port[,host:port...].')
flags.DEFINE_string('bzid', None, 'Business id: the ZooKeeper root of the deployment.')
flags.DEFINE_string('export_base', None, 'decl: exported saved models, one dir per sub-graph.')
flags.DEFINE_bool('overwrite', False, 'decl: replace an existing declaration.')
flags.DEFINE_string('model_name', None,
                    'decl: model name (default: read from the entry graph); '
                    'pub/unpub: model_name:sub_graph_pattern, e.g. m:ps_*.')
flags.DEFINE_string('layout', None, 'pub/unpub: layout name, i.e. /{bzid}/layouts/{layout}.')
flags.DEFINE_string('arch', 'entry_ps', 'Deployment architecture (only entry_ps).')
flags.DEFINE_string('cmd', None, 'One of: {}.'.format(', '.join(_CMDS)))


def find_model_name(exported_models_path: str) -> Optional[str]:
  """The model name the entry graph's TfServingRemotePredict nodes call, or None.

  Reads the lexicographically first version under entry/ (as upstream does).
  """
  entry_path = os.path.join(exported_models_path, 'entry')
  timestamp = sorted(tf.io.gfile.listdir(entry_path))[0].rstrip('/')
  pb_path = os.path.join(entry_path, timestamp, 'saved_model.pb')
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(pb_path, 'rb') as fp:
    saved_model.ParseFromString(fp.read())
  for node in saved_model.meta_graphs[0].graph_def.node:
    if node.op == 'TfServingRemotePredict' and 'model_name' in node.attr:
      return tf.compat.as_str(node.attr['model_name'].s).split(':')[0]
  return None


def declare_saved_model(bd: CtrlBackend, export_base: str, model_name: str = None,
                        overwrite: bool = False, arch: str = 'entry_ps') -> str:
  assert arch == 'entry_ps', 'arch {} is not supported, only entry_ps'.format(arch)
  export_name = find_model_name(export_base)
  if model_name is None:
    model_name = export_name
  elif export_name is not None and export_name != model_name:
    logging.error('model_name %s differs from %s found in the exported entry graph', model_name,
                  export_name)
  assert model_name is not None, 'no model_name given and none found in {}'.format(export_base)
  existing = bd.list_saved_models(model_name)
  assert overwrite or not existing, '{} is already declared ({}); use --overwrite'.format(
      model_name, ', '.join(str(m) for m in existing))
  for sub_graph in sorted(tf.io.gfile.listdir(export_base)):
    sub_graph = sub_graph.rstrip('/')
    if sub_graph.startswith('.'):
      continue
    deploy_config = SavedModelDeployConfig(
        model_base_path=os.path.join(export_base, sub_graph),
        version_policy='latest' if sub_graph == 'entry' else 'latest_once')
    bd.decl_saved_model(SavedModel(model_name, sub_graph), deploy_config)
  logging.info('declared %s from %s', model_name, export_base)
  return model_name


def map_model_to_layout(bd: CtrlBackend, model_pattern: str, layout_path: str, action: str):
  """Adds (pub) or removes (unpub) every declared sub-graph matching `model:sub_graph_glob`."""
  model_name, sep, sub_graph_pattern = model_pattern.partition(':')
  if not sep or not model_name or not sub_graph_pattern:
    raise ValueError('model pattern {!r} is not model_name:sub_graph_pattern'.format(
        model_pattern))
  if action not in ('pub', 'unpub'):
    raise ValueError('action {!r} is not pub or unpub'.format(action))
  sub_graphs = [m.sub_graph for m in bd.list_saved_models(model_name)]
  matched = fnmatch.filter(sub_graphs, sub_graph_pattern)
  if not matched:
    logging.warning('%s matches none of the declared sub-graphs of %s: %s', model_pattern,
                    model_name, sub_graphs)
  for sub_graph in matched:
    saved_model = SavedModel(model_name, sub_graph)
    if action == 'pub':
      bd.add_to_layout(layout_path, saved_model)
    else:
      bd.remove_from_layout(layout_path, saved_model)
  return matched


def bzid_info(bd: CtrlBackend):
  print(json.dumps(bd.bzid_info(), indent=2))


def main(argv):
  del argv
  if FLAGS.cmd not in _CMDS:
    logging.error('--cmd must be one of %s, got %r', ', '.join(_CMDS), FLAGS.cmd)
    return 2
  if not FLAGS.zk_servers or not FLAGS.bzid:
    logging.error('--zk_servers and --bzid are required')
    return 2
  if FLAGS.cmd == 'decl' and not FLAGS.export_base:
    logging.error('--export_base is required for decl')
    return 2
  if FLAGS.cmd in ('pub', 'unpub') and (not FLAGS.layout or not FLAGS.model_name):
    logging.error('--layout and --model_name (model:sub_graph_pattern) are required for %s',
                  FLAGS.cmd)
    return 2
  bd = ZKBackend(FLAGS.bzid, zk_servers=FLAGS.zk_servers)
  try:
    bd.start()
    if FLAGS.cmd == 'decl':
      declare_saved_model(bd, FLAGS.export_base, FLAGS.model_name, FLAGS.overwrite, FLAGS.arch)
    elif FLAGS.cmd in ('pub', 'unpub'):
      layout_path = '/{}/layouts/{}'.format(FLAGS.bzid, FLAGS.layout)
      map_model_to_layout(bd, FLAGS.model_name, layout_path, FLAGS.cmd)
    else:
      bzid_info(bd)
  except (AssertionError, ValueError, tf.errors.OpError, KazooException, KazooTimeoutError) as e:
    logging.error('%s failed: %s', FLAGS.cmd, e)
    return 1
  finally:
    bd.stop()
  return 0


def cli():
  """Console-script entry point (`monolith-agent-controller`)."""
  env_utils.setup_hdfs_env()
  utils.run_cli(main, __name__)


if __name__ == '__main__':
  cli()
