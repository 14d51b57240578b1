"""`import monolith`: module aliases and the MonitoredSession monkey patch."""

import importlib
import importlib.machinery
import sys
import types
from unittest import mock

from absl.testing import absltest
import tensorflow as tf
from tensorflow.python.training import monitored_session

import monolith
from monolith import utils

_ALIASES = {
    'data': 'data',
    'layers': 'layers',
    'model_export': 'model_export',
    'entry': 'entry',
    'native_model': 'base_model',
    'estimator': 'estimator',
}


def _installed_module(full_name):
  module = types.ModuleType(full_name)
  module.__spec__ = importlib.machinery.ModuleSpec(full_name, None)
  return module


class MonolithInitTest(absltest.TestCase):

  def _forget_aliases(self):
    for alias in _ALIASES.values():
      if hasattr(monolith, alias):
        delattr(monolith, alias)

  def test_monkey_patch_applied_on_import(self):
    self.assertEqual(monitored_session._PREEMPTION_ERRORS, (tf.errors.AbortedError,))

  def test_aliases_registered_in_sys_modules(self):
    installed = {
        name: _installed_module('monolith.native_training.' + name) for name in _ALIASES
    }
    self.addCleanup(self._forget_aliases)
    with mock.patch.dict(sys.modules, {m.__name__: m for m in installed.values()}):
      monolith._add_native_training_aliases()
      for name, alias in _ALIASES.items():
        self.assertIs(sys.modules['monolith.' + alias], installed[name])
        self.assertIs(getattr(monolith, alias), installed[name])
      self.assertNotIn('monolith.native_model', sys.modules)
      # Registered names are importable like real submodules.
      base_model = importlib.import_module('monolith.base_model')
      self.assertIs(base_model, installed['native_model'])

  def test_add_module_by_name_and_object(self):
    self.addCleanup(self._forget_aliases)
    with mock.patch.dict(sys.modules):
      monolith.add_module('monolith.utils')
      self.assertIs(sys.modules['monolith.utils'], utils)
      module = _installed_module('somewhere.else.native_model')
      monolith.add_module(module)
      self.assertIs(sys.modules['monolith.base_model'], module)
      self.assertIs(monolith.base_model, module)
    self.assertNotIn('monolith.base_model', sys.modules)

  def test_missing_alias_module_is_skipped(self):
    self.addCleanup(self._forget_aliases)
    with mock.patch.dict(sys.modules):
      for name, alias in _ALIASES.items():
        sys.modules.pop('monolith.native_training.' + name, None)
        sys.modules.pop('monolith.' + alias, None)
      with mock.patch.object(monolith, '_module_exists', return_value=False):
        monolith._add_native_training_aliases()
      for alias in _ALIASES.values():
        self.assertNotIn('monolith.' + alias, sys.modules)

  def test_alias_import_failure_is_logged(self):
    self.addCleanup(self._forget_aliases)
    with mock.patch.object(monolith, '_module_exists', return_value=True), \
        mock.patch.object(monolith, 'add_module', side_effect=ImportError('broken module')), \
        self.assertLogs('absl', level='ERROR') as logs:
      monolith._add_native_training_aliases()
    self.assertLen(logs.records, len(_ALIASES))
    self.assertIn('monolith.native_training.native_model', logs.output[4])
    self.assertIn('monolith.base_model is not available', logs.output[4])

  def test_monkey_patch_failure_is_logged_not_raised(self):
    with mock.patch.object(utils, 'enable_monkey_patch',
                           side_effect=RuntimeError('no monitored_session')), \
        self.assertLogs('absl', level='ERROR') as logs:
      importlib.reload(monolith)
    self.assertIn('enable_monkey_patch failed', logs.output[-1])
    self.assertIn('no monitored_session', logs.records[-1].exc_text or
                  str(logs.records[-1].exc_info[1]))
    importlib.reload(monolith)
    self.assertEqual(monitored_session._PREEMPTION_ERRORS, (tf.errors.AbortedError,))


if __name__ == '__main__':
  absltest.main()
