import os

from absl.testing import absltest
from google.protobuf import text_format

from monolith.native_training.model_export import export_pb2
from monolith.native_training.model_export import export_state_utils


class ExportStateUtilsTest(absltest.TestCase):

  def test_missing_file_is_empty(self):
    state = export_state_utils.get_export_saver_listener_state(
        os.path.join(self.create_tempdir().full_path, 'nothing_here'))
    self.assertEqual(state, export_pb2.ServingModelState())

  def test_roundtrip_and_format(self):
    base = os.path.join(self.create_tempdir().full_path, 'm', 'ps_0')
    state = export_pb2.ServingModelState()
    state.entries.add(export_dir='hdfs:///m/exported_models/ps_0/1622716114', global_step=100)
    state.entries.add(export_dir='hdfs:///m/exported_models/ps_0/1622716200', global_step=200)
    export_state_utils.overwrite_export_saver_listener_state(base, state)
    self.assertEqual(export_state_utils.get_export_saver_listener_state(base), state)
    with open(os.path.join(base, 'ExportSaverListenerState')) as fp:
      text = fp.read()
    # the on-disk format is text format, as upstream writers and readers expect
    self.assertEqual(text_format.Parse(text, export_pb2.ServingModelState()), state)
    self.assertIn('global_step: 100', text)
    self.assertFalse(os.path.exists(os.path.join(base, 'ExportSaverListenerState-tmp')))
    # overwrite replaces, it does not append
    state.entries.pop(0)
    export_state_utils.overwrite_export_saver_listener_state(base, state)
    self.assertLen(export_state_utils.get_export_saver_listener_state(base).entries, 1)

  def test_reads_upstream_text(self):
    base = self.create_tempdir().full_path
    with open(os.path.join(base, 'ExportSaverListenerState'), 'w') as fp:
      fp.write('entries {\n  export_dir: "hdfs:///m/exported_models/ps_0/1622716114"\n'
               '  global_step: 100\n}\n')
    state = export_state_utils.get_export_saver_listener_state(base)
    self.assertEqual(state.entries[-1].global_step, 100)

  def test_corrupt_file_raises(self):
    base = self.create_tempdir().full_path
    with open(os.path.join(base, 'ExportSaverListenerState'), 'w') as fp:
      fp.write('entries { export_dir: ')
    with self.assertRaises(text_format.ParseError):
      export_state_utils.get_export_saver_listener_state(base)


if __name__ == '__main__':
  absltest.main()
