"""Untyped, nestable hyper-parameter containers (`Params`, `InstantiableParams`).

A `Params` is an attribute bag whose keys must be defined before they are set, so that typos in
configs fail loudly (with "did you mean" suggestions) instead of silently adding new keys.
"""

import copy
import enum
import inspect
import re
from typing import Any, Dict, Iterator, Tuple

_NAME_RE = re.compile(r'^[a-z][a-z0-9_]*$')
# A dotted-path segment that indexes into a list: `name[3]`.
_LIST_INDEX_RE = re.compile(r'^(.+)\[(.+)\]$')

# Keras-style keyword arguments passed to `cls(**kwargs)` even when `__init__` only takes them
# through `**kwargs`.
allowed_kwargs = {
    'input_dim', 'input_shape', 'batch_input_shape', 'weights', 'activity_regularizer',
    'autocast', 'implementation', 'name'
}


def _is_tensor(value) -> bool:
  # Imported lazily: hyperparams is used by code paths that never touch TensorFlow.
  try:
    import tensorflow as tf
  except ImportError:
    return False
  return isinstance(value, tf.Tensor)


class _Param:
  """One parameter: name, value and (ignored by equality) description."""

  def __init__(self, name: str, value: Any, description: str):
    self._name = name
    self._value = value
    self._description = description

  def __eq__(self, other):
    return (isinstance(other, _Param) and self._name == other._name and
            self._value == other._value)

  def __ne__(self, other):
    return not self == other

  def __deepcopy__(self, memo):
    # Tensors cannot be deep-copied; they are shared by reference.
    value = self._value if _is_tensor(self._value) else copy.deepcopy(self._value, memo)
    return _Param(self._name, value, self._description)

  def to_string(self, nested_depth: int) -> str:
    indent = '  ' * nested_depth
    if isinstance(self._value, Params):
      return '%s%s: %s' % (indent, self._name, self._value._to_string(nested_depth))
    if isinstance(self._value, str):
      return '%s%s: "%s"' % (indent, self._name, self._value)
    return '%s%s: %s' % (indent, self._name, _value_str(self._value))

  def set(self, value):
    self._value = value

  def get(self):
    return self._value


def _to_plain(value):
  """Converts nested Params inside containers to dicts for printing."""
  if isinstance(value, Params):
    return {k: _to_plain(v) for k, v in value.iter_params()}
  if isinstance(value, dict):
    return {k: _to_plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_to_plain(v) for v in value)
  return value


def _value_str(value) -> str:
  if hasattr(value, 'Repr') and callable(value.Repr):
    return value.Repr()
  if isinstance(value, enum.Enum):
    return str(value)
  return _sorted_str(_to_plain(value))


def _sorted_str(value, nested: bool = False) -> str:
  """Like `str()`, but with dict keys sorted (so the rendering is deterministic)."""
  if isinstance(value, dict):
    return '{' + ', '.join(
        '%r: %s' % (k, _sorted_str(value[k], True)) for k in sorted(value)) + '}'
  if isinstance(value, list):
    return '[' + ', '.join(_sorted_str(v, True) for v in value) + ']'
  if isinstance(value, tuple):
    inner = ', '.join(_sorted_str(v, True) for v in value)
    return '(' + inner + (',)' if len(value) == 1 else ')')
  if hasattr(value, 'Repr') and callable(value.Repr):
    return value.Repr()
  return repr(value) if nested else str(value)


class Params:
  """A mutable (until frozen) bag of named, defined-before-use parameters."""

  def __init__(self):
    self.__dict__['_immutable'] = False
    self._params: Dict[str, _Param] = {}

  def __setattr__(self, name, value):
    if self._immutable:
      raise TypeError('This Params instance is immutable.')
    if name in ('_params', '_immutable'):
      self.__dict__[name] = value
      return
    try:
      self._params[name].set(value)
    except KeyError:
      raise AttributeError(self._key_error_string(name))

  def __getattr__(self, name):
    # Only reached for names that are not real attributes.
    if name.startswith('__') or name in ('_params', '_immutable'):
      raise AttributeError(name)
    try:
      return self._params[name].get()
    except KeyError:
      raise AttributeError(self._key_error_string(name))

  def __setitem__(self, name, value):
    self.__setattr__(name, value)

  def __getitem__(self, name):
    return self.__getattr__(name)

  def __contains__(self, name) -> bool:
    return name in self._params

  def contain(self, name) -> bool:
    return name in self._params

  def __len__(self) -> int:
    return len(self._params)

  def __dir__(self):
    return sorted(self._params.keys())

  def __eq__(self, other) -> bool:
    return isinstance(other, Params) and self._params == other._params

  def __ne__(self, other) -> bool:
    return not self == other

  def __str__(self) -> str:
    return self._to_string(0)

  __repr__ = __str__

  def __deepcopy__(self, memo):
    return self.copy()

  def _to_string(self, nested_depth: int) -> str:
    lines = [self._params[k].to_string(nested_depth + 1) for k in sorted(self._params)]
    return '{\n%s\n%s}' % ('\n'.join(lines), '  ' * nested_depth)

  def _similar_keys(self, name: str):
    """Defined keys sharing more than half of `name`'s leading trigrams."""
    trials = [name[i:i + 3] for i in range(len(name) - 3)]
    if not trials:
      return []
    return sorted(
        key for key in self._params
        if sum(1 for t in trials if t in key) > len(trials) / 2)

  def _key_error_string(self, name: str) -> str:
    similar = self._similar_keys(name)
    if similar:
      return name + ' (did you mean: [%s])' % ','.join(similar)
    return name

  def _copy_to(self, res: 'Params') -> 'Params':
    res.__dict__['_params'] = copy.deepcopy(self._params)
    res.__dict__['_immutable'] = self._immutable
    return res

  def copy(self) -> 'Params':
    return self._copy_to(type(self)())

  def define(self, name: str, default_value: Any, description: str):
    if self._immutable:
      raise TypeError('This Params instance is immutable.')
    assert name is not None and isinstance(name, str) and _NAME_RE.match(name), (
        'Invalid parameter name %r: must match %s' % (name, _NAME_RE.pattern))
    if name in self._params:
      raise AttributeError('Parameter %s is already defined' % name)
    self._params[name] = _Param(name, default_value, description)

  def freeze(self):
    # Assigns through the guarded setter on purpose: freezing twice raises TypeError (upstream).
    self._immutable = True

  def is_immutable(self) -> bool:
    return self._immutable

  def _get_nested(self, name: str) -> Tuple['Params', str]:
    """Returns (the Params holding the last path segment, that segment)."""
    parts = name.split('.')
    curr = self
    for i, part in enumerate(parts[:-1]):
      match = _LIST_INDEX_RE.match(part)
      try:
        if match:
          curr = curr._params[match.group(1)].get()[int(match.group(2))]
        else:
          curr = curr._params[part].get()
      except KeyError:
        raise AttributeError('.'.join(parts[:i + 1]))
      assert isinstance(curr, Params), ('Cannot introspect %s for %s' %
                                        (type(curr), '.'.join(parts[:i + 1])))
    return curr, parts[-1]

  def set(self, **kwargs) -> 'Params':
    if self._immutable:
      raise TypeError('This Params instance is immutable: %s' % self)
    for name, value in kwargs.items():
      param, key = self._get_nested(name)
      try:
        param._params[key].set(value)
      except KeyError:
        raise AttributeError(self._key_error_string(name))
    return self

  def get(self, name: str) -> Any:
    param, key = self._get_nested(name)
    try:
      return param._params[key].get()
    except KeyError:
      raise AttributeError(self._key_error_string(name))

  def delete(self, *args) -> 'Params':
    if self._immutable:
      raise TypeError('This Params instance is immutable.')
    for name in args:
      param, key = self._get_nested(name)
      try:
        del param._params[key]
      except KeyError:
        raise AttributeError(self._key_error_string(name))
    return self

  def iter_params(self) -> Iterator[Tuple[str, Any]]:
    for name, param in self._params.items():
      yield name, param.get()


def copy_params_to(from_p: Params, to_p: Params, skip=None) -> Params:
  """Copies every param of `from_p` (except `skip`) into the already-defined ones of `to_p`."""
  skip = skip or []
  for name, value in from_p.iter_params():
    if name in skip:
      continue
    if isinstance(value, Params):
      to_p.set(**{name: value.copy()})
    else:
      to_p.set(**{name: value})
  return to_p


def update_params(ips: Params, args: dict):
  """Assigns (and pops) every entry of `args` whose key names a leaf anywhere in `ips`."""
  for name, value in list(ips.iter_params()):
    if isinstance(value, Params):
      update_params(value, args)
    elif name in args:
      ips[name] = args.pop(name)


def _flatten_leaves(params: Params, out: Dict[str, Any]) -> Dict[str, Any]:
  for name, value in params.iter_params():
    if isinstance(value, Params):
      _flatten_leaves(value, out)
    else:
      out[name] = value
  return out


class InstantiableParams(Params):
  """Params that know the class they configure and can build it with `instantiate()`."""

  def __init__(self, cls=None):
    super().__init__()
    self.define('cls', cls, 'Cls that this param object is associated with.')

  def instantiate(self):
    assert self.cls is not None, 'InstantiableParams.cls is not set'
    parameters = inspect.signature(self.cls.__init__).parameters
    if len(parameters) == 2 and 'params' in parameters and hasattr(self.cls, 'params'):
      return self.cls(self)
    leaves = _flatten_leaves(self, {})
    kwargs = {}
    for name, parameter in parameters.items():
      if name in ('self', 'cls') or parameter.kind in (inspect.Parameter.VAR_POSITIONAL,
                                                       inspect.Parameter.VAR_KEYWORD):
        continue
      if name in leaves:
        kwargs[name] = leaves[name]
    for name in allowed_kwargs:
      if leaves.get(name) is not None:
        kwargs[name] = leaves[name]
    return self.cls(**kwargs)

  def copy(self) -> 'InstantiableParams':
    return self._copy_to(type(self)(self.cls))
