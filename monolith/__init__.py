"""Monolith package root.

Registers short aliases of the main training modules (`monolith.data`, `monolith.layers`,
`monolith.model_export`, `monolith.entry`, `monolith.base_model`, `monolith.estimator`) and
restricts MonitoredSession's preemption recovery (`utils.enable_monkey_patch`).

An aliased module that is not installed (e.g. outside a Bazel target's dependencies) is skipped,
and one that fails to import is logged: `import monolith` must work for every sub-package.
"""

import importlib
import importlib.util
import sys
import types
from typing import Union

from absl import logging

# Modules of monolith.native_training exposed as monolith.<name>.
_ALIASED_MODULES = ('data', 'layers', 'model_export', 'entry', 'native_model', 'estimator')
# Upstream exposes native_model under this name.
_RENAMED = {'native_model': 'base_model'}


def add_module(module: Union[str, types.ModuleType]):
  """Registers `module` (a module or its dotted name) as `monolith.<last name component>`."""
  if isinstance(module, str):
    module = importlib.import_module(module)
  name = module.__name__.split('.')[-1]
  name = _RENAMED.get(name, name)
  sys.modules['monolith.' + name] = module
  # Also as an attribute, so that `monolith.<name>` works without a further import.
  setattr(sys.modules[__name__], name, module)


def _module_exists(full_name: str) -> bool:
  try:
    return importlib.util.find_spec(full_name) is not None
  except ImportError:
    return False


def _add_native_training_aliases():
  for name in _ALIASED_MODULES:
    full_name = 'monolith.native_training.' + name
    if not _module_exists(full_name):
      logging.debug('monolith: %s is not installed; monolith.%s is not aliased.', full_name,
                    _RENAMED.get(name, name))
      continue
    try:
      add_module(full_name)
    except Exception:  # pylint: disable=broad-except
      logging.exception('monolith: failed to import %s; monolith.%s is not available.',
                        full_name, _RENAMED.get(name, name))


_add_native_training_aliases()

try:
  from monolith import utils as _utils  # pylint: disable=g-import-not-at-top
  _utils.enable_monkey_patch()
except Exception:  # pylint: disable=broad-except
  logging.exception('enable_monkey_patch failed')
