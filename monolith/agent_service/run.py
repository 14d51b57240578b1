# Copyright 2022 ByteDance and/or its affiliates.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
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
