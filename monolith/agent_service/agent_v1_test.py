"""ProcessNode picks the real TF Serving binary when one is configured, the built-in server
otherwise. (The whole AgentV1 runs end to end in agent_test.)"""

import os
import stat
import sys
import tempfile
import unittest

from monolith.agent_service.agent_v1 import ProcessNode, ProcessType
from monolith.agent_service.utils import AgentConfig


class ProcessNodeTest(unittest.TestCase):

  def setUp(self):
    self.tmp = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
    self.conf = AgentConfig(bzid='bz', base_name='demo', deploy_type='mixed', num_ps=1,
                            base_path=os.path.join(self.tmp, 'models'),
                            platform_config_file=os.path.join(self.tmp, 'platform.cfg'))

  def test_real_binary_when_executable(self):
    binary = os.path.join(self.tmp, 'tensorflow_model_server')
    with open(binary, 'w') as f:
      f.write('#!/bin/sh\nexit 0\n')
    os.chmod(binary, os.stat(binary).st_mode | stat.S_IXUSR)
    node = ProcessNode(self.conf, None, ProcessType.PS, tfs_binary=binary)
    self.assertEqual(node._args[0], binary)
    self.assertIn(f'--archon_port={self.conf.tfs_ps_archon_port}', node._args)

  def test_builtin_server_otherwise(self):
    node = ProcessNode(self.conf, None, ProcessType.ENTRY,
                       tfs_binary=os.path.join(self.tmp, 'missing'))
    self.assertEqual(node._args[:4],
                     [sys.executable, '-P', '-m', 'monolith.agent_service.model_server'])
    self.assertIn(f'--port={self.conf.tfs_entry_port}', node._args)
    self.assertFalse(any(a.startswith('--archon') for a in node._args))
    config_file = next(a for a in node._args if a.startswith('--model_config_file='))
    with open(config_file.split('=', 1)[1]) as f:
      self.assertIn('name: "entry"', f.read())
    # The entry server learns the agent port through PORT2, as with TF Serving.
    self.assertEqual(node._env['PORT2'], str(self.conf.agent_port))


if __name__ == '__main__':
  unittest.main()
