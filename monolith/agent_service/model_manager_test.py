"""ModelManager copies the newest complete p2p version and never exposes a partial copy."""

import os
import shutil
import tempfile
import time
import unittest
from unittest import mock

from monolith.agent_service.model_manager import ModelManager, READ_LOCK

MODEL = 'test_model'
SUB_MODELS = ('ps_item_embedding_0', 'ps_item_embedding_1')


def create_file(model_name, timestamp, p2p_data_path, done=True):
  for sub_model in SUB_MODELS:
    path = os.path.join(p2p_data_path, f'{model_name}@{timestamp}', model_name, sub_model,
                        str(timestamp))
    os.makedirs(path)
    with open(os.path.join(path, 'saved_model.pb'), 'w') as f:
      f.write(f'{sub_model}@{timestamp}')
  if done:
    open(os.path.join(p2p_data_path, f'{model_name}@{timestamp}.write.done'), 'w').close()


class ModelManagerTest(unittest.TestCase):

  def setUp(self):
    self.root = tempfile.mkdtemp(dir=os.environ.get('TEST_TMPDIR'))
    self.p2p = os.path.join(self.root, 'p2p')
    self.receive = os.path.join(self.root, 'model_data')
    os.makedirs(self.p2p)
    self.managers = []

  def tearDown(self):
    for manager in self.managers:
      manager.stop()
    shutil.rmtree(self.root)

  def manager(self, loop_interval=0.2):
    manager = ModelManager(MODEL, self.p2p, self.receive, use_metrics=False)
    manager._wait_timeout = 5
    manager._loop_interval = loop_interval
    self.managers.append(manager)
    return manager

  def copied(self, timestamp):
    return [
        os.path.isfile(os.path.join(self.receive, MODEL, s, str(timestamp), 'saved_model.pb'))
        for s in SUB_MODELS
    ]

  def test_start(self):
    create_file(MODEL, 1234567, self.p2p)
    manager = self.manager()
    self.assertTrue(manager.start())
    self.assertEqual(self.copied(1234567), [True, True])
    # Every pass releases its read locks (the background loop holds them only while it reads,
    # so look once it has stopped).
    manager.stop()
    self.assertEqual([n for n in os.listdir(self.p2p) if n.endswith(READ_LOCK)], [])

  def test_failed_pass_releases_read_locks(self):
    create_file(MODEL, 1234567, self.p2p)
    manager = self.manager(loop_interval=0.05)
    self.assertTrue(manager.start())
    create_file(MODEL, 1234568, self.p2p)
    with mock.patch.object(manager, 'copy_model', side_effect=OSError('disk full')):
      time.sleep(0.3)  # several failing passes
      manager.stop()
    self.assertEqual([n for n in os.listdir(self.p2p) if n.endswith(READ_LOCK)], [])

  def test_ignore_old(self):
    create_file(MODEL, 1234567, self.p2p)
    self.assertTrue(self.manager().start())
    create_file(MODEL, 1234566, self.p2p)
    time.sleep(1)
    self.assertEqual(self.copied(1234566), [False, False])
    self.assertEqual(self.copied(1234567), [True, True])

  def test_newer_version_is_picked_up(self):
    create_file(MODEL, 1234567, self.p2p)
    self.assertTrue(self.manager().start())
    create_file(MODEL, 1234568, self.p2p, done=False)
    time.sleep(0.6)
    self.assertEqual(self.copied(1234568), [False, False])  # no .write.done yet
    open(os.path.join(self.p2p, f'{MODEL}@1234568.write.done'), 'w').close()
    deadline = time.time() + 10
    while self.copied(1234568) != [True, True]:
      self.assertLess(time.time(), deadline)
      time.sleep(0.1)

  def test_no_download_fails_start(self):
    manager = self.manager()
    manager._wait_timeout = 0.5
    self.assertFalse(manager.start())

  def test_no_model_name_is_idle(self):
    self.assertTrue(ModelManager(None, None, None).start())

  def test_interrupted_copy_exposes_nothing(self):
    create_file(MODEL, 1234567, self.p2p)
    manager = self.manager()
    real_copytree = shutil.copytree
    calls = []

    def failing_copytree(src, dst, *args, **kwargs):
      calls.append(dst)
      if len(calls) == 2:  # the second sub model fails half way
        os.makedirs(dst)
        raise OSError('disk full')
      return real_copytree(src, dst, *args, **kwargs)

    data = manager.get_source_data()[MODEL]
    with mock.patch('shutil.copytree', failing_copytree):
      ok, files = manager.copy_model(MODEL, data[0], data[1])
    self.assertEqual((ok, files), (False, []))
    self.assertEqual(self.copied(1234567), [False, False])
    leftovers = []
    for dirpath, dirnames, _ in os.walk(self.receive):
      leftovers += [d for d in dirnames if d.endswith('-temp')]
    self.assertEqual(leftovers, [])
    # A stale temp dir from a crashed copy is copied afresh, not renamed into place.
    stale = os.path.join(self.receive, MODEL, SUB_MODELS[0], '1234567-temp')
    os.makedirs(stale)
    ok, files = manager.copy_model(MODEL, data[0], data[1])
    self.assertTrue(ok)
    self.assertEqual(self.copied(1234567), [True, True])

  def test_remove_old_versions(self):
    manager = self.manager()  # not started: this test drives loop_once itself
    manager._remain_version_num = 2
    for ts in (1000001, 1000002, 1000003):
      create_file(MODEL, ts, self.p2p)
      self.assertTrue(manager.loop_once())
    manager.remove_old_file()
    self.assertEqual(self.copied(1000001), [False, False])
    self.assertEqual(self.copied(1000003), [True, True])


if __name__ == '__main__':
  unittest.main()
