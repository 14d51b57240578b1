"""Small helpers shared by Monolith training code (device names, metric prefix, collections)."""

import os
import platform
import socket
from typing import Iterable, List, Union

from absl import logging
import tensorflow as tf

PS_JOB_NAME = "ps"

_METRIC_PREFIX_ENV = "MONOLITH_METRIC_PREFIX"
_DEFAULT_METRIC_PREFIX = "monolith.training"


def ps_device(index: int) -> str:
  return "/job:{}/task:{}/device:CPU:0".format(PS_JOB_NAME, index)


def get_metric_prefix() -> str:
  return os.environ.get(_METRIC_PREFIX_ENV, _DEFAULT_METRIC_PREFIX)


def set_metric_prefix(prefix: str):
  os.environ[_METRIC_PREFIX_ENV] = prefix


def get_meta_graph_file_name(model_dir: str) -> str:
  return os.path.join(model_dir, "meta_graph_for_debugging.pb")


def get_debugging_info_file_name(model_dir: str) -> str:
  return os.path.join(model_dir, "debugging_info.pb")


def get_test_tmp_dir() -> str:
  return os.environ.get("TEST_TMPDIR", "/tmp")


def get_local_host() -> str:
  hostname = socket.gethostname()
  if platform.system() not in ("Windows", "Linux"):
    hostname += ".local"
  return socket.gethostbyname(hostname)


def to_list(x) -> list:
  return x if isinstance(x, list) else [x]


def add_to_collections(names: Union[str, Iterable[str]], value):
  """Adds `value` to the graph collection(s); scalars (even False/0/'') always, other values
  only when truthy."""
  if isinstance(value, (bool, int, float, str)) or value:
    tf.compat.v1.add_to_collections(names, value)
  else:
    logging.info("value is %s, skip", value)


def get_collection(name: str):
  collection = tf.compat.v1.get_collection(name)
  return collection if collection else None


def check_ops_dependence(op_names_1: Union[str, List[str]], op_names_2: Union[str, List[str]]):
  """Raises if any op in `op_names_2` is needed to compute the ops in `op_names_1`."""
  op_names_1 = to_list(op_names_1)
  op_names_2 = set(to_list(op_names_2))
  graph_def = tf.compat.v1.get_default_graph().as_graph_def()
  sub_graph = tf.compat.v1.graph_util.extract_sub_graph(graph_def, op_names_1)
  found = [node.name for node in sub_graph.node if node.name in op_names_2]
  if found:
    raise Exception(
        "Checking ops dependence, the ops [{}] depend on ops [{}], which may cause ops [{}] to "
        "be run twice.".format(",".join(op_names_1), ",".join(found), ",".join(found)))
