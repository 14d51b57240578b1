"""Process-wide export state: whether (and how) the model graph is being built for a SavedModel
export, plus the sub-graphs and signatures collected while doing so."""

import collections
import contextlib
import enum
from typing import Dict, Optional

import tensorflow as tf


class ExportMode(enum.Enum):
  NONE = 0
  STANDALONE = 1
  DISTRIBUTED = 2


SavedModelSignature = collections.namedtuple('SavedModelSignature', ['name', 'inputs', 'outputs'])


class ExportContext(object):

  def __init__(self, with_remote_gpu: bool = False):
    self._sub_graphs = collections.OrderedDict()
    self._dense_sub_graphs = collections.OrderedDict()
    self._signatures = collections.defaultdict(collections.OrderedDict)
    self._with_remote_gpu = with_remote_gpu

  def sub_graph(self, name: str) -> tf.Graph:
    if name not in self._sub_graphs:
      self._sub_graphs[name] = tf.Graph()
    return self._sub_graphs[name]

  def dense_sub_graph(self, name: str) -> tf.Graph:
    if name not in self._dense_sub_graphs:
      self._dense_sub_graphs[name] = tf.Graph()
    return self._dense_sub_graphs[name]

  @property
  def sub_graphs(self) -> Dict[str, tf.Graph]:
    return self._sub_graphs

  @property
  def dense_sub_graphs(self) -> Dict[str, tf.Graph]:
    return self._dense_sub_graphs

  @property
  def with_remote_gpu(self) -> bool:
    return self._with_remote_gpu

  @property
  def sub_graph_num(self) -> int:
    return len(self._sub_graphs)

  def signatures(self, graph: tf.Graph):
    return self._signatures[id(graph)].values()

  def add_signature(self, graph: tf.Graph, name: str, inputs: Dict, outputs: Dict):
    self._signatures[id(graph)][name] = SavedModelSignature(name, inputs, outputs)
    graph.add_to_collection('signature_name', name)

  def merge_signature(self, graph: tf.Graph, name: str, inputs: Dict, outputs: Dict):
    signatures = self._signatures[id(graph)]
    if name in signatures:
      signatures[name].inputs.update(inputs)
      signatures[name].outputs.update(outputs)
    else:
      self.add_signature(graph, name, dict(inputs), dict(outputs))


EXPORT_MODE = ExportMode.NONE
EXPORT_CTX = None


def is_exporting() -> bool:
  return EXPORT_MODE != ExportMode.NONE


def is_exporting_standalone() -> bool:
  return EXPORT_MODE == ExportMode.STANDALONE


def is_exporting_distributed() -> bool:
  return EXPORT_MODE == ExportMode.DISTRIBUTED


def get_current_export_ctx() -> Optional[ExportContext]:
  return EXPORT_CTX


def is_dry_run_or_exporting() -> bool:
  return is_exporting() or hasattr(tf.compat.v1.get_default_graph(), 'dry_run')


@contextlib.contextmanager
def enter_export_mode(mode: ExportMode, export_ctx: Optional[ExportContext] = None):
  global EXPORT_MODE, EXPORT_CTX
  assert EXPORT_MODE == ExportMode.NONE, "export mode can't be nested"
  EXPORT_MODE = mode
  EXPORT_CTX = export_ctx if export_ctx is not None else ExportContext()
  try:
    yield EXPORT_CTX
  finally:
    EXPORT_MODE = ExportMode.NONE
    EXPORT_CTX = None
