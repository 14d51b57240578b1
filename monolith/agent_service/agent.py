"""The serving agent: `agent --conf=<agent.conf> [--tfs_log=<file>]`.

Picks AgentV1 (one model server per role) or AgentV3 (unified, layout driven) from the conf's
`agent_version`; a dense deploy with `dense_service_num > 1` runs one agent process per dense
service. Exit status 1 means the conf is missing or invalid.
"""

import multiprocessing
import os
import signal
import sys

from absl import flags, logging

from monolith import utils
from monolith.agent_service import constants
from monolith.agent_service import model_server
from monolith.agent_service.agent_v1 import AgentV1
from monolith.agent_service.agent_v3 import AgentV3
from monolith.agent_service.model_manager import ModelManager
from monolith.agent_service.utils import AgentConfig, DeployType
from monolith.native_training import env_utils

FLAGS = flags.FLAGS
flags.DEFINE_string('tfs_log', '/var/log/tiger/monolith_serving/tfs.std.log',
                    'Model server log file; each role logs to <dir>/<role>_<name>.')


class AgentConfError(Exception):
  """The agent conf cannot run (exit status 1, no traceback)."""


def load_config(conf_path: str) -> AgentConfig:
  if not os.path.isfile(conf_path):
    raise AgentConfError(f'agent conf file {conf_path!r} does not exist')
  try:
    return AgentConfig.from_file(conf_path)
  except (ValueError, TypeError, AssertionError) as e:
    raise AgentConfError(f'invalid agent conf {conf_path!r}: {e}') from e


def run_agent(conf_path: str, tfs_log: str, use_mps: bool, replica_id: int,
              dense_service_index: int):
  if use_mps:
    os.environ['REPLICA_ID'] = str(replica_id)
    os.environ['DENSE_SERVICE_IDX'] = str(dense_service_index)
    tfs_log = f'{tfs_log}.mps{dense_service_index}'
  config = load_config(conf_path)
  conf_dir = os.path.dirname(conf_path)
  if config.agent_version == 1:
    agent = AgentV1(config, conf_dir, tfs_log)
  elif config.agent_version == 2:
    raise AgentConfError('agent_version v2 is not support')
  elif config.agent_version == 3:
    agent = AgentV3(config, conf_dir, tfs_log)
  else:
    raise AgentConfError(f'agent_version error: {config.agent_version} is not one of 1, 3')
  model_manager = ModelManager(config.rough_sort_model_name, config.rough_sort_model_p2p_path,
                               config.rough_sort_model_local_path, True)
  if not model_manager.start():
    logging.error('model manager failed to start, killing the agent')
    os.kill(os.getpid(), signal.SIGKILL)
  agent.start()
  agent.wait_for_termination()


def main(argv):
  del argv
  # The AgentService answers HeartBeat next to ZooKeeper and updater threads; a short GIL
  # switch interval keeps its tail latency from waiting out other threads' 5 ms slices.
  sys.setswitchinterval(model_server.GIL_SWITCH_INTERVAL_S)
  try:
    env_utils.setup_hdfs_env()
  except Exception as e:  # pylint: disable=broad-except
    logging.error('setup_hdfs_env failed: %s', e)
  logging.info(f'environ is : {os.environ!r}')
  if not FLAGS.conf:
    print(FLAGS.get_help(), file=sys.stderr)
    print('agent: --conf is required', file=sys.stderr)
    return 1
  if (os.environ.get(constants.HOST_SHARD_ENV, '1') == '1' and 'SHARD_ID' not in os.environ):
    # The only shard is shard 0. Upstream left SHARD_ID at -1 here, so a one-machine mixed
    # deploy scheduled no PS model and its entry waited forever for PS replicas.
    os.environ['SHARD_ID'] = '0'
  try:
    config = load_config(FLAGS.conf)
    if config.deploy_type == DeployType.DENSE and config.dense_service_num > 1:
      procs = []
      for i in range(config.dense_service_num):
        cur_rid = config.replica_id * config.dense_service_num + i
        proc = multiprocessing.Process(target=run_agent,
                                       args=(FLAGS.conf, FLAGS.tfs_log, True, cur_rid, i))
        proc.start()
        procs.append(proc)

      def forward(signum, frame):
        # Upstream's parent died alone and left every dense agent and model server running.
        del frame
        for proc in procs:
          if proc.pid is not None and proc.is_alive():
            os.kill(proc.pid, signum)

      signal.signal(signal.SIGTERM, forward)
      signal.signal(signal.SIGINT, forward)
      for proc in procs:
        proc.join()
      return max((abs(p.exitcode or 0) for p in procs), default=0)
    run_agent(FLAGS.conf, FLAGS.tfs_log, False, config.replica_id, 0)
  except AgentConfError as e:
    logging.error('%s', e)
    print(f'agent: {e}', file=sys.stderr)
    return 1
  return 0


def cli():
  utils.run_cli(main, __name__, 'monolith.agent_service.utils')


if __name__ == '__main__':
  cli()
