"""Asynchronous functions: run a function one step later, on arguments passed through a
capacity-1 queue, so that its work (e.g. pushing embedding gradients) overlaps the next step."""

from typing import Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from monolith.native_training import utils

_PYTHON_LEAF_TYPES = (bool, int, str, tf.Variable)


class AsyncPushHook(tf.compat.v1.train.SessionRunHook):
  """Runs the consumer side (`ops`) with every step once the queue has data, and drains the
  queue at the end so that no enqueued arguments are lost."""

  def __init__(self, queue: tf.queue.QueueBase, ops):
    self._queue = queue
    self._ops = ops
    self._queue_init = False
    self._size = None

  def begin(self):
    self._size = self._queue.size()
    self._queue_init = False

  def before_run(self, run_context):
    if self._queue_init:
      return tf.compat.v1.train.SessionRunArgs(self._ops)
    return None

  def after_run(self, run_context, run_values):
    if not self._queue_init:
      self._queue_init = run_context.session.run(self._size) > 0

  def end(self, session):
    while session.run(self._size) > 0:
      session.run(self._ops)


class AsyncFunctionMgr(object):

  def __init__(self, is_async: bool = True):
    self._is_async = is_async
    self._hooks = []

  @property
  def hooks(self) -> List[AsyncPushHook]:
    return self._hooks

  def add_async_function(self,
                         target: Callable,
                         args: Optional[Sequence] = None,
                         kwargs: Optional[Dict] = None,
                         is_async: Optional[bool] = None,
                         queue_name: str = "async_queue"):
    """Synchronously: returns `target(*args, **kwargs)`. Asynchronously: returns the enqueue op
    to run every step; `target` runs (through `hooks`) on the previous step's arguments.

    Tensors `target` reads must come through `args`/`kwargs`; others may already have changed."""
    if is_async is None:
      is_async = self._is_async
    args = tuple(args or ())
    kwargs = dict(kwargs or {})
    if not is_async:
      return target(*args, **kwargs)

    # A dummy element keeps the queue element non-empty even without tensor arguments.
    dummy = tf.constant(0, name="dummy_tensor_for_async_function")
    structure = (args + (dummy,), kwargs)
    leaves = tf.nest.flatten(structure)
    tensors, plan = _plan_leaves(leaves)

    cpu_indices = [i for i, t in enumerate(tensors) if "GPU" not in t.device]
    gpu_indices = [i for i, t in enumerate(tensors) if "GPU" in t.device]
    queues, enqueues, dequeued = [], [], [None] * len(tensors)
    for indices, device, name in ((cpu_indices, "/device:CPU:0", queue_name),
                                  (gpu_indices, "/device:GPU:0", queue_name + "_gpu")):
      if not indices:
        continue
      with tf.device(device):
        queue = tf.queue.FIFOQueue(1, [tensors[i].dtype for i in indices], name=name)
        enqueues.append(queue.enqueue([tensors[i] for i in indices]))
        with tf.init_scope():
          values = queue.dequeue()
      values = values if isinstance(values, list) else [values]
      for i, value in zip(indices, values):
        value.set_shape(tensors[i].shape)
        dequeued[i] = value
      queues.append(queue)
    enqueue_op = tf.group(enqueues, name=queue_name + "_enqueue")

    new_args, new_kwargs = tf.nest.pack_sequence_as(structure, _rebuild(plan, dequeued))
    dequeued_dummy, new_args = new_args[-1], new_args[:-1]
    depended_op = tf.no_op(name="dummy_depended_op_for_async_function")
    with tf.init_scope(), tf.control_dependencies([dequeued_dummy, depended_op]):
      run_ops = target(*new_args, **new_kwargs)
      if run_ops is None:
        run_ops = tf.group(dequeued)
    self._hooks.append(AsyncPushHook(queues[0], run_ops))
    utils.check_ops_dependence(enqueue_op.name, depended_op.name)
    return enqueue_op


def _plan_leaves(leaves):
  """Unique tensors to queue (a ragged tensor as values + row_splits) and, per leaf, how to
  rebuild it from the dequeued tensors."""
  tensors, position, plan = [], {}, []

  def index_of(t):
    if id(t) not in position:
      position[id(t)] = len(tensors)
      tensors.append(t)
    return position[id(t)]

  for leaf in leaves:
    if isinstance(leaf, tf.RaggedTensor):
      if leaf.ragged_rank != 1:
        raise ValueError("Nested tensor doesn't support nested RaggedTensor.")
      plan.append(("ragged", index_of(leaf.values), index_of(leaf.row_splits)))
    elif isinstance(leaf, tf.Tensor):
      plan.append(("tensor", index_of(leaf)))
    elif leaf is None or isinstance(leaf, _PYTHON_LEAF_TYPES):
      plan.append(("python", leaf))
    else:
      # Upstream means to raise this, but its isinstance check has None in the type tuple and
      # raises a TypeError instead.
      raise ValueError("Tensor is not supported. {}".format(leaf))
  return tensors, plan


def _rebuild(plan, dequeued):
  out = []
  for entry in plan:
    if entry[0] == "ragged":
      out.append(tf.RaggedTensor.from_row_splits(dequeued[entry[1]], dequeued[entry[2]],
                                                 validate=False))
    elif entry[0] == "tensor":
      out.append(dequeued[entry[1]])
    else:
      out.append(entry[1])
  return out
