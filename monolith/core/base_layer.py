"""`BaseLayer`: parent of Monolith core layers and tasks (child management, layer losses)."""

import collections
from typing import Dict, List

import tensorflow as tf

from monolith.core import hyperparams
from monolith.core import py_utils

# Per-graph layer losses: graph -> {layer name -> loss}.
_layer_loss = collections.defaultdict(dict)
# Names handed out by `get_uname`.
_name_inuse = collections.defaultdict(int)


class BaseLayer:
  """Base class for layers built from `InstantiableParams`."""

  @classmethod
  def params(cls) -> hyperparams.InstantiableParams:
    p = hyperparams.InstantiableParams(cls)
    p.define('name', get_uname(cls.__name__), 'Name of this layer object.')
    return p

  def __init__(self, params: hyperparams.InstantiableParams):
    assert params.name, 'Layer params for %s must have a "name"' % self.__class__.__name__
    self._private_children = py_utils.NestedMap()

  @property
  def children(self) -> py_utils.NestedMap:
    return self._private_children

  def __getattr__(self, name: str):
    if '_private_children' not in self.__dict__:
      raise AttributeError('Sub-layers are not created yet (%s).' % name)
    if name in self._private_children:
      return self._private_children[name]
    if hasattr(type(self), name):
      # A property whose getter raised AttributeError ends up here; call it again so the
      # caller sees the property's own error rather than a misleading "not a sub-layer".
      attr = getattr(type(self), name)
      if isinstance(attr, property):
        return attr.fget(self)
    raise AttributeError('%s is not a sub-layer of %s.' % (name, self))

  def __call__(self, *args, **kwargs):
    return self.fprop(*args, **kwargs)

  def fprop(self, *args, **kwargs):
    del args, kwargs
    raise NotImplementedError('Abstract method of %s' % self)

  def create_child(self, name: str, params: hyperparams.InstantiableParams):
    """Instantiates `params` as the child `name` (inheriting this layer's name if unset)."""
    if not params.name:
      params.name = self.p.name
    self._private_children[name] = params.instantiate()

  def create_children(self, name: str, params: List[hyperparams.InstantiableParams]):
    """Instantiates each of `params` (named `<name>_<i>` if unset) as the child list `name`."""
    children = []
    for index, param in enumerate(params):
      if not param.name:
        param.name = '%s_%d' % (name, index)
      children.append(param.instantiate())
    self._private_children[name] = children


def get_uname(name: str) -> str:
  """Returns `name`, suffixed with a counter if it was registered in `_name_inuse`.

  Upstream never registers names here, so in practice this returns `name` unchanged; kept so
  that default layer names stay identical to upstream configs.
  """
  if name in _name_inuse:
    _name_inuse[name] += 1
    return '%s_%d' % (name, _name_inuse[name])
  return name


def add_layer_loss(name: str, loss):
  _layer_loss[tf.compat.v1.get_default_graph()][name] = loss


def get_layer_loss() -> Dict[str, tf.Tensor]:
  return _layer_loss[tf.compat.v1.get_default_graph()]
