import os

from absl.testing import absltest

from monolith.agent_service import resource_utils
from monolith.native_training.model_export import export_pb2
from monolith.native_training.model_export import export_state_utils


def _write(path, size):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as fp:
    fp.write(b'x' * size)


class UtilTest(absltest.TestCase):

  def test_cal_avaiable_memory_v2(self):
    total = resource_utils.total_memory_v2()
    available = resource_utils.cal_available_memory_v2()
    self.assertGreater(available, 0)
    self.assertLess(available, total)

  def test_cal_cpu_usage_v2(self):
    usage = resource_utils.cal_cpu_usage_v2()
    self.assertBetween(usage, 0, 100)

  def make_export(self):
    """<model_dir>/exported_models/{entry,ps_0,ps_1}/{100,200}/... plus a checkpoint and its
    hash-table dumps; step 2000 exported version 200, step 1000 version 100."""
    model_dir = self.create_tempdir().full_path
    exported = os.path.join(model_dir, 'exported_models')
    for sub_model in ('entry', 'ps_0', 'ps_1'):
      state = export_pb2.ServingModelState()
      for version, step in ((100, 1000), (200, 2000)):
        version_dir = os.path.join(exported, sub_model, str(version))
        _write(os.path.join(version_dir, 'saved_model.pb'), version)
        _write(os.path.join(version_dir, 'variables', 'variables.index'), 10)
        state.entries.add(export_dir=version_dir, global_step=step)
      export_state_utils.overwrite_export_saver_listener_state(
          os.path.join(exported, sub_model), state)
    with open(os.path.join(model_dir, 'checkpoint'), 'w') as fp:
      fp.write('model_checkpoint_path: "model.ckpt-2000"\n')
    assets = os.path.join(model_dir, 'model.ckpt-2000.assets')
    _write(os.path.join(assets, 'MonolithHashTable_abcdef_1-00000-of-00004'), 1000)
    _write(os.path.join(assets, 'MonolithHashTable_abcdef_1-00001-of-00004'), 500)
    _write(os.path.join(assets, 'unrelated.txt'), 7)
    return model_dir, exported

  def test_cal_model_info_v2(self):
    _, exported = self.make_export()
    info = resource_utils.cal_model_info_v2(exported)  # latest checkpoint: step 2000
    self.assertEqual(info, {
        'entry': (210, os.path.join(exported, 'entry', '200')),
        'ps_0': (210, os.path.join(exported, 'ps_0', '200')),
        'ps_1': (210 + 1500, os.path.join(exported, 'ps_1', '200')),
    })
    info = resource_utils.cal_model_info_v2(exported, ckpt='model.ckpt-1000')
    self.assertEqual(info['ps_1'], (110, os.path.join(exported, 'ps_1', '100')))
    info = resource_utils.cal_model_info_v2(exported + '/', ckpt='model.ckpt-1000', version='200')
    self.assertEqual(info['entry'], (210, os.path.join(exported, 'entry', '200')))

  def test_cal_model_info_v2_without_state(self):
    _, exported = self.make_export()
    for sub_model in ('entry', 'ps_0', 'ps_1'):
      os.remove(os.path.join(exported, sub_model, 'ExportSaverListenerState'))
    # no state files: the newest version every sub-model has
    info = resource_utils.cal_model_info_v2(exported)
    self.assertEqual(info['ps_0'][1], os.path.join(exported, 'ps_0', '200'))

  def test_cal_model_info_v2_bad_input(self):
    with self.assertRaisesRegex(AssertionError, 'does not exist'):
      resource_utils.cal_model_info_v2('/no/such/export')
    _, exported = self.make_export()
    with self.assertRaisesRegex(ValueError, 'no version'):
      resource_utils.cal_model_info_v2(exported, ckpt='model.ckpt-3000')


if __name__ == '__main__':
  absltest.main()
