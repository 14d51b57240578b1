"""One binary for the agent and its clients: `run --bin_name=agent|agent_client|tfs_client`."""

from absl import app, flags

from monolith.agent_service import agent
from monolith.agent_service import agent_client
from monolith.agent_service import tfs_client

FLAGS = flags.FLAGS
_MAINS = {'agent': agent.main, 'agent_client': agent_client.main, 'tfs_client': tfs_client.main}
flags.DEFINE_enum('bin_name', 'agent', list(_MAINS), 'Which program to run.')


def main(argv):
  return _MAINS[FLAGS.bin_name](argv)


def cli():
  app.run(main)


if __name__ == '__main__':
  cli()
