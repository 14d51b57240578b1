"""`ReplicatedVariable`: one logical variable backed by a per-replica variable on every TPU core.

Inside a TPU replicate context the ops use the context's replicated handle, so every replica
reads/updates its own copy; outside (on the host, or on CPU) the primary (`variables[0]`) is used.
"""

import tensorflow as tf
from tensorflow.python.framework import ops
from tensorflow.python.framework import tensor_conversion_registry
from tensorflow.python.ops import gen_resource_variable_ops
from tensorflow.python.tpu import tpu_replication


def _enclosing_tpu_context():
  graph = ops.get_default_graph()
  while graph is not None:
    context = graph._get_control_flow_context()  # pylint: disable=protected-access
    while context is not None:
      if isinstance(context, tpu_replication.TPUReplicateContext):
        return context
      context = context.outer_context
    graph = getattr(graph, 'outer_graph', None)
  return None


class ReplicatedVariable:
  """A tensor-like wrapper of a list of per-replica resource variables."""

  def __init__(self, name, variables):
    assert variables, 'ReplicatedVariable {} needs at least one variable.'.format(name)
    self._name = name
    self._primary_var = variables[0]
    self._vars = variables
    self._dtype = variables[0].dtype

  @property
  def handle(self):
    tpu_context = _enclosing_tpu_context()
    if tpu_context is None:
      return self._primary_var.handle
    return tpu_context.get_replicated_var_handle(self._name, self._name, self._vars)

  @property
  def initializer(self):
    return tf.group([v.initializer for v in self._vars])

  @property
  def graph(self):
    return self._primary_var.graph

  @property
  def name(self):
    return self._name

  @property
  def dtype(self):
    return self._primary_var.dtype

  @property
  def shape(self):
    return self._primary_var.shape

  def get_shape(self):
    return self._primary_var.get_shape()

  def to_proto(self, export_scope=None):
    return self._primary_var.to_proto(export_scope=export_scope)

  @property
  def constraint(self):
    return None

  @property
  def op(self):
    return self.get().op

  def get(self):
    return self._primary_var

  def _read_variable_op(self):
    if _enclosing_tpu_context() is None:
      return self._primary_var.read_value()
    return gen_resource_variable_ops.read_variable_op(self.handle, self._dtype)

  def read_value(self):
    return self._read_variable_op()

  def _update(self, op_fn, value, read_value):
    update = op_fn(self.handle, ops.convert_to_tensor(value, dtype=self.dtype))
    if read_value:
      with tf.control_dependencies([update]):
        return self._read_variable_op()
    return update

  def assign(self, value, use_locking=None, name=None, read_value=False):
    del use_locking, name
    return self._update(gen_resource_variable_ops.assign_variable_op, value, read_value)

  def assign_add(self, delta, use_locking=None, name=None, read_value=True):
    del use_locking, name
    return self._update(gen_resource_variable_ops.assign_add_variable_op, delta, read_value)

  def assign_sub(self, delta, use_locking=None, name=None, read_value=True):
    del use_locking, name
    return self._update(gen_resource_variable_ops.assign_sub_variable_op, delta, read_value)

  def _dense_var_to_tensor(self, dtype=None, name=None, as_ref=False):
    del name
    if dtype is not None and dtype != self.dtype:
      return NotImplemented
    if as_ref:
      return self.handle
    return self.read_value()


def _tensor_conversion(var, dtype=None, name=None, as_ref=False):
  return var._dense_var_to_tensor(dtype=dtype, name=name, as_ref=as_ref)  # pylint: disable=protected-access


tensor_conversion_registry.register_tensor_conversion_function(ReplicatedVariable,
                                                               _tensor_conversion)
