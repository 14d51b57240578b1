"""Serving-agent configuration (agent.conf), TF-Serving config/command generation and helpers."""

import ast
import hashlib
import json
import operator
import os
import re
import socket
import tempfile
from dataclasses import dataclass, fields
from itertools import product
from typing import Any, Callable, Dict, List, Optional, Union, get_args, get_origin

from absl import flags, logging
from google.protobuf import json_format, text_format
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import config_pb2, error_codes_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.apis import status_pb2
from tensorflow_serving.config import model_server_config_pb2, platform_config_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2

from idl.matrix.proto import proto_parser_pb2
from monolith.agent_service import constants
from monolith.agent_service import tfs_platform_protos
from monolith.native_training import zk_utils

flags.DEFINE_string("conf", "", "agent conf file")

TFS_HOME = "/opt/tiger/monolith_serving"
DEFAULT_PLATFORM_CONFIG_FILE = "{}/conf/platform_config_file.cfg".format(TFS_HOME)

_ORIGINAL_ISABS = os.path.isabs


def _isabs(path) -> bool:
  # HDFS URIs are absolute base paths for TF Serving; os.path.isabs does not know them.
  if isinstance(path, str) and path.startswith('hdfs:/'):
    return True
  return _ORIGINAL_ISABS(path)


os.path.isabs = _isabs

ServableVersionPolicy = file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy
ModelConfig = model_server_config_pb2.ModelConfig
ModelServerConfig = model_server_config_pb2.ModelServerConfig
ModelVersionStatus = get_model_status_pb2.ModelVersionStatus
StatusProto = status_pb2.StatusProto
ErrorCode = error_codes_pb2.Code

# Field names of idl.matrix.proto.Feature: an opening line naming anything else (or a field the
# current feature already has) leaves the feature element in InstanceFormater.from_dump.
FeatureKeys = {
    'name', 'fid', 'float_value', 'int64_value', 'bytes_value', 'fid_list', 'float_list',
    'int64_list', 'bytes_list'
}

# `key value` or `key=value`; the value keeps inner spaces (e.g. `60 * 1000 * 1000`).
SEQ = re.compile(r'\s*=\s*|\s+')


class ConfError(ValueError):
  """A malformed agent.conf line or value; the message names the file/key and the input."""


def conf_parser(file_name: str, args: Dict[str, Any]):
  """Parses an agent.conf file into `args` (in place); `include <path>` parses another file.

  A repeated key turns its value into a list holding every occurrence in order (upstream kept only
  the first two, silently dropping later lines; all are kept here).
  """
  if not file_name or not os.path.exists(file_name):
    logging.info('conf file %r does not exist, nothing to parse', file_name)
    return
  with open(file_name) as fp:
    for lineno, raw in enumerate(fp, 1):
      line = raw.split('#', 1)[0].strip()
      if not line:
        continue
      parts = SEQ.split(line, maxsplit=1)
      if len(parts) != 2 or not parts[0] or not parts[1].strip():
        raise ConfError('{}:{}: expected "key value" or "key=value", got {!r}'.format(
            file_name, lineno, raw.rstrip('\n')))
      key, value = parts[0].strip(), parts[1].strip()
      if key == 'include':
        conf_parser(value, args)
        continue
      if key in args:
        if isinstance(args[key], list):
          args[key].append(value)
        else:
          args[key] = [args[key], value]
      else:
        args[key] = value


def find_free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(('localhost', 0))
    return sock.getsockname()[1]


def check_port_open(port: int) -> bool:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.settimeout(1)
    try:
      sock.connect(('127.0.0.1', int(port)))
      logging.info('port %s is open', port)
      return True
    except OSError as e:
      logging.info('port %s is not open: %s', port, e)
      return False


def write_to_tmp_file(content) -> str:
  fd, path = tempfile.mkstemp()
  with os.fdopen(fd, 'w') as fp:
    fp.write(str(content))
  return path


def replica_id_from_pod_name() -> int:
  try:
    pod_name = os.environ.get('MY_POD_NAME')
    if pod_name:
      digest = hashlib.md5(pod_name.encode('utf-8')).hexdigest()
      return int(digest[10:20], 16)
    return -1
  except Exception as e:
    logging.warning('replica_id_from_pod_name failed: %s', e)
    return -1


class TFSServerType(object):
  PS = 'ps'
  ENTRY = 'entry'
  DENSE = 'dense'
  UNIFIED = 'unified'


class DeployType(object):
  MIXED = 'mixed'
  ENTRY = TFSServerType.ENTRY
  PS = TFSServerType.PS
  DENSE = TFSServerType.DENSE
  UNIFIED = TFSServerType.UNIFIED
  _ALL = (MIXED, ENTRY, PS, DENSE, UNIFIED)

  def __init__(self, dtype: Union[str, 'DeployType']):
    dtype = str(dtype).lower()
    if dtype not in self._ALL:
      raise ValueError('deploy_type {!r} is not one of {}'.format(dtype, ', '.join(self._ALL)))
    self._type = dtype

  def __eq__(self, other):
    if isinstance(other, DeployType):
      return self._type == other._type
    if isinstance(other, str):
      return self._type == other.lower()
    return NotImplemented

  def __hash__(self):
    return hash(self._type)

  def __str__(self):
    return self._type

  def __repr__(self):
    return 'DeployType({!r})'.format(self._type)

  def compat_server_type(self, server_type: Optional[str]) -> str:
    if server_type is None or server_type == DeployType.MIXED:
      if self._type == DeployType.MIXED:
        raise RuntimeError('server_type must be given when deploy_type is mixed')
      return self._type
    if self._type == DeployType.MIXED:
      return server_type
    assert self._type == server_type, 'server_type {} does not match deploy_type {}'.format(
        server_type, self._type)
    return server_type


class RoughSortModelLoadedServer(object):
  ENTRY = TFSServerType.ENTRY
  PS = TFSServerType.PS
  DENSE = TFSServerType.DENSE


class RoughSortModelPrefix(object):
  ENTRY = 'entry_item_embedding'
  PS = 'ps_item_embedding'
  DENSE = 'dense_item_embedding'


def gen_model_spec(name: str, version: Union[int, str] = None,
                   signature_name: str = None) -> model_pb2.ModelSpec:
  spec = model_pb2.ModelSpec(name=name)
  if isinstance(version, int):
    spec.version.value = version
  elif isinstance(version, str):
    spec.version_label = version
  if signature_name:
    spec.signature_name = signature_name
  return spec


def gen_model_config(name: str, base_path: str, version_policy: str = 'latest',
                     version_data: Union[int, List[int]] = 1, model_platform: str = 'tensorflow',
                     version_labels: Dict[str, int] = None) -> ModelConfig:
  config = ModelConfig(name=name, base_path=base_path, model_platform=model_platform)
  policy = version_policy.lower() if isinstance(version_policy, str) else version_policy
  if policy == 'latest':
    config.model_version_policy.latest.num_versions = int(version_data)
  elif policy == 'latest_once':
    # `latest_once` exists only in ByteDance's internal TF Serving; the public proto (and the
    # `tensorflow-serving-api` wheel) has no such field. The nearest public policy is `latest`
    # with the same number of versions, which a stock model server understands.
    logging.warning('version policy latest_once is not in public TF Serving, using latest for %s',
                    name)
    config.model_version_policy.latest.num_versions = int(version_data)
  elif policy == 'all':
    config.model_version_policy.all.CopyFrom(ServableVersionPolicy.All())
  elif policy == 'specific':
    versions = version_data if isinstance(version_data, (list, tuple)) else [version_data]
    config.model_version_policy.specific.versions.extend(int(v) for v in versions)
  else:
    raise ValueError('version_policy {!r} is not supported'.format(version_policy))
  if version_labels:
    for label, version in version_labels.items():
      config.version_labels[label] = version
  return config


def gen_status_proto(error_code=ErrorCode.OK, error_message: str = None) -> StatusProto:
  status = StatusProto(error_code=error_code)
  if error_message:
    status.error_message = error_message
  return status


def gen_model_version_status(version: int, state=ModelVersionStatus.State.UNKNOWN,
                             error_code=ErrorCode.OK,
                             error_message: str = None) -> ModelVersionStatus:
  return ModelVersionStatus(version=version, state=state,
                            status=gen_status_proto(error_code, error_message))


def latest_version_status(statuses, not_found_message: str) -> ModelVersionStatus:
  """What GetModelStatus says of a model: its highest AVAILABLE version, else its highest
  version; UNKNOWN (NOT_FOUND, `not_found_message`) when it lists none."""
  if not statuses:
    return ModelVersionStatus(state=ModelVersionStatus.State.UNKNOWN,
                              status=gen_status_proto(ErrorCode.NOT_FOUND, not_found_message))
  ordered = sorted(statuses, key=lambda s: s.version, reverse=True)
  return next((s for s in ordered if s.state == ModelVersionStatus.State.AVAILABLE), ordered[0])


def rpc_error_version_status(error) -> ModelVersionStatus:
  """A failed GetModelStatus call (`error` is its grpc.RpcError) as an UNKNOWN status."""
  return ModelVersionStatus(state=ModelVersionStatus.State.UNKNOWN,
                            status=gen_status_proto(error.code().value[0], error.details()))


def make_tensor_proto(instances: List[bytes]) -> tensor_pb2.TensorProto:
  """A 1-D DT_STRING tensor holding the serialized messages."""
  return tensor_pb2.TensorProto(
      dtype=types_pb2.DT_STRING,
      tensor_shape=tensor_shape_pb2.TensorShapeProto(
          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(instances))]),
      string_val=instances)


DEFAULT_MODEL_CONFIG = gen_model_config(
    name='default', base_path='{}/dat/saved_models/entry'.format(TFS_HOME))


def pasre_sub_model_name(sub_model_name: str):
  """`ps_3` -> ('ps', 3), `entry` -> ('entry', 0). (The typo is the upstream public name.)"""
  parts = sub_model_name.split('_')
  if len(parts) > 1 and parts[-1].isdigit():
    return '_'.join(parts[:-1]).lower(), int(parts[-1])
  return sub_model_name.lower(), 0


def get_local_ip() -> str:
  try:
    ip = os.environ.get('MY_HOST_IP') or socket.gethostbyname(socket.gethostname())
    if ip:
      return ip
  except OSError as e:
    logging.info('host name lookup failed: %s', e)
  try:
    # A UDP "connect" sends nothing; it only picks the outgoing interface.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
      sock.connect(('8.8.8.8', 80))
      return sock.getsockname()[0]
  except OSError as e:
    logging.info('no routable local address: %s', e)
  return 'localhost'


# ---------------------------------------------------------------- conf-value conversion
_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow
}


def _eval_number(text: str):
  """Evaluates a numeric literal or arithmetic expression (`60 * 1000 * 1000`).

  Upstream used `eval`; arbitrary code in a conf file is not acceptable, so only numbers and
  + - * / // % ** and parentheses are accepted.
  """

  def ev(node):
    if isinstance(node, ast.Expression):
      return ev(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
        and not isinstance(node.value, bool):
      return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
      return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
      value = ev(node.operand)
      return -value if isinstance(node.op, ast.USub) else value
    raise ValueError('not a number')

  return ev(ast.parse(text.strip(), mode='eval'))


_TRUE = ('true', 'y', 't', 'yes', '1', 'on')
_FALSE = ('false', 'n', 'f', 'no', '0', 'off')


def _convert(key: str, value: Any, annotation) -> Any:
  origin = get_origin(annotation)
  if origin in (list, List):
    (item_type,) = get_args(annotation) or (str,)
    items = value if isinstance(value, list) else [value]
    return [_convert(key, item, item_type) for item in items]
  if origin is Union:  # Optional[X]
    inner = [a for a in get_args(annotation) if a is not type(None)]
    return _convert(key, value, inner[0])
  if isinstance(value, list):
    raise ConfError('conf key {!r} is given {} times ({}), but it takes one value'.format(
        key, len(value), value))
  if not isinstance(value, str):
    return value
  if value.lower() == 'none':
    return None
  try:
    if annotation is bool:
      if value.lower() in _TRUE:
        return True
      if value.lower() in _FALSE:
        return False
      raise ValueError('not a boolean')
    if annotation is int:
      number = _eval_number(value)
      if isinstance(number, float) and not number.is_integer():
        raise ValueError('not an integer')
      return int(number)
    if annotation is float:
      return float(_eval_number(value))
  except (ValueError, SyntaxError, ZeroDivisionError, TypeError) as e:
    raise ConfError('conf key {!r}: cannot convert {!r} to {}: {}'.format(
        key, value, annotation.__name__, e)) from None
  return value


# ---------------------------------------------------------------- TF Serving flags
@dataclass
class TfServingConfig:
  """TF Serving model-server flags; a value that differs from the default becomes `--name=value`."""
  enable_batching: bool = False
  allow_version_labels_for_unavailable_models: bool = False
  batching_parameters_file: str = None
  num_load_threads: int = 0
  num_unload_threads: int = 0
  max_num_load_retries: int = 5
  load_retry_interval_micros: int = 60 * 1000 * 1000
  file_system_poll_wait_seconds: int = 1
  flush_filesystem_caches: bool = True
  tensorflow_session_parallelism: int = 0
  tensorflow_intra_op_parallelism: int = 0
  tensorflow_inter_op_parallelism: int = 0
  ssl_config_file: str = None
  platform_config_file: str = None
  per_process_gpu_memory_fraction: float = 0
  allow_growth: bool = True
  saved_model_tags: str = None
  grpc_channel_arguments: str = None
  grpc_max_threads: int = 0
  enable_model_warmup: bool = True
  version: bool = None
  remove_unused_fields_from_bundle_metagraph: bool = True
  enable_signature_method_name_check: bool = False
  xla_cpu_compilation_enabled: bool = False
  enable_profiler: bool = True


_TFS_FIELDS = [f.name for f in fields(TfServingConfig)]
_TFS_DEFAULTS = {f.name: f.default for f in fields(TfServingConfig)}


def _flag_value(value) -> str:
  if isinstance(value, bool):
    return 'true' if value else 'false'
  return str(value)


def _env_port(env_name: str, configured: Optional[int]) -> int:
  """Port from env `env_name` (the scheduler's allocation) or the conf, else a free port."""
  value = os.environ.get(env_name)
  if value:
    try:
      return int(value)
    except ValueError:
      raise ConfError('environment variable {}={!r} is not a port number'.format(
          env_name, value)) from None
  if configured is not None:
    return int(configured)
  return find_free_port()


def _free_port(configured: Optional[int]) -> int:
  return int(configured) if configured is not None else find_free_port()


def _update_zk_servers(zk_servers: Optional[str], use_ipv6: bool) -> Optional[str]:
  if use_ipv6 and zk_servers and re.search(r'(^|,)\d+\.\d+\.\d+\.\d+(:\d+)?', zk_servers):
    default_ipv4 = ','.join('{}:{}'.format(ip, zk_utils._PORT) for ip in zk_utils._HOSTS)
    if zk_servers == default_ipv4:
      logging.warning('the host is ipv6 only, switching to the default ipv6 zk servers')
      return zk_utils.default_zk_servers(True)
    raise Exception('the host is is ipv6 only, but zk_servers specified is ipv4')
  return zk_servers


@dataclass
class AgentConfig(TfServingConfig):
  bzid: str = None
  base_name: str = None
  base_path: str = None
  num_ps: int = 1
  num_shard: int = None
  deploy_type: str = None
  replica_id: int = None
  stand_alone_serving: bool = False
  zk_servers: str = None

  proxy_port: int = None
  tfs_entry_port: int = None
  tfs_entry_http_port: int = None
  tfs_entry_archon_port: int = None
  tfs_ps_port: int = None
  tfs_ps_http_port: int = None
  tfs_ps_archon_port: int = None

  dense_alone: bool = False
  dense_service_num: int = 3
  tfs_dense_port: int = None
  tfs_dense_http_port: int = None
  tfs_dense_archon_port: int = None

  agent_port: int = None
  update_model_status_interval: int = 1
  model_config_file: str = None
  agent_version: int = 1
  max_waiting_sec: int = 1200
  preload_jemalloc: bool = True

  version_policy: str = 'latest'
  version_data: int = 1

  fetch_ps_timeout_ms: int = 200
  fetch_ps_long_conn_num: int = 100
  fetch_ps_long_conn_enable: bool = True
  fetch_ps_retry: int = 2
  aio_thread_num: int = 30

  file_system_poll_wait_seconds_ps: int = 0

  rough_sort_model_name: str = None
  rough_sort_model_local_path: str = None
  rough_sort_model_loaded_server: str = RoughSortModelLoadedServer.ENTRY
  rough_sort_model_p2p_path: str = None
  rough_sort_resource_constrained: bool = False

  dc_aware: bool = False

  layout_pattern: str = None
  layout_filters: List[str] = None
  tfs_port_archon: int = None
  tfs_port_grpc: int = None
  tfs_port_http: int = None
  use_metrics: bool = True

  def __post_init__(self):
    self.zk_servers = _update_zk_servers(self.zk_servers, zk_utils.is_ipv6_only())
    if self.stand_alone_serving:
      self.deploy_type = DeployType(DeployType.MIXED)
    else:
      if self.deploy_type is None:
        raise ConfError('deploy_type (or legacy server_type) is required unless '
                        'stand_alone_serving is set')
      self.deploy_type = DeployType(self.deploy_type)

    if self.num_shard is None:
      self.num_shard = self.num_tce_shard
    elif self.num_shard != self.num_tce_shard:
      raise ConfError('num_shard {} does not match {}={}'.format(
          self.num_shard, constants.HOST_SHARD_ENV, self.num_tce_shard))

    self._allocate_ports()
    self.agent_port = _env_port('PORT2', self.agent_port)

    if self.agent_version == 1:
      self.replica_id = replica_id_from_pod_name()
    else:
      replica_env = os.environ.get('REPLICA_ID')
      self.replica_id = int(replica_env) if replica_env else replica_id_from_pod_name()

    if self.platform_config_file is None:
      self.platform_config_file = DEFAULT_PLATFORM_CONFIG_FILE
    self.generate_platform_config_file()

  def _dense_ports_from_env(self) -> bool:
    return os.environ.get('DENSE_SERVICE_IDX', '0') == '0'

  def _allocate_dense(self, names=('PORT8', 'PORT9', 'PORT10')):
    if self.dense_alone and self._dense_ports_from_env():
      self.tfs_dense_port = _env_port(names[0], self.tfs_dense_port)
      self.tfs_dense_http_port = _env_port(names[1], self.tfs_dense_http_port)
      self.tfs_dense_archon_port = _env_port(names[2], self.tfs_dense_archon_port)
    else:
      self.tfs_dense_port = _free_port(self.tfs_dense_port)
      self.tfs_dense_http_port = _free_port(self.tfs_dense_http_port)
      self.tfs_dense_archon_port = _free_port(self.tfs_dense_archon_port)

  def _free_entry(self):
    self.tfs_entry_port = _free_port(self.tfs_entry_port)
    self.tfs_entry_http_port = _free_port(self.tfs_entry_http_port)
    self.tfs_entry_archon_port = _free_port(self.tfs_entry_archon_port)

  def _free_ps(self):
    self.tfs_ps_port = _free_port(self.tfs_ps_port)
    self.tfs_ps_http_port = _free_port(self.tfs_ps_http_port)
    self.tfs_ps_archon_port = _free_port(self.tfs_ps_archon_port)

  def _allocate_ports(self):
    dtype = self.deploy_type
    if dtype == DeployType.MIXED:
      self.proxy_port = _free_port(self.proxy_port)
      self.tfs_entry_port = _env_port('PORT', self.tfs_entry_port)
      self.tfs_entry_http_port = _env_port('PORT3', self.tfs_entry_http_port)
      self.tfs_entry_archon_port = _env_port('PORT4', self.tfs_entry_archon_port)
      self.tfs_ps_port = _env_port('PORT5', self.tfs_ps_port)
      self.tfs_ps_http_port = _env_port('PORT6', self.tfs_ps_http_port)
      self.tfs_ps_archon_port = _env_port('PORT7', self.tfs_ps_archon_port)
      self._allocate_dense()
    elif dtype == DeployType.ENTRY:
      self.proxy_port = _free_port(self.proxy_port)
      self._free_ps()
      self.tfs_entry_port = _env_port('PORT', self.tfs_entry_port)
      self.tfs_entry_http_port = _env_port('PORT3', self.tfs_entry_http_port)
      self.tfs_entry_archon_port = _env_port('PORT4', self.tfs_entry_archon_port)
      if self.dense_alone:
        self._free_dense()
    elif dtype == DeployType.PS:
      self.proxy_port = _free_port(self.proxy_port)
      self._free_entry()
      self.tfs_ps_port = _env_port('PORT', self.tfs_ps_port)
      self.tfs_ps_http_port = _env_port('PORT3', self.tfs_ps_http_port)
      self.tfs_ps_archon_port = _env_port('PORT4', self.tfs_ps_archon_port)
      if self.dense_alone:
        self._free_dense()
    elif dtype == DeployType.DENSE:
      if not self.dense_alone:
        raise ConfError('deploy_type dense requires dense_alone true')
      self._free_entry()
      self._free_ps()
      self._allocate_dense(names=('PORT', 'PORT3', 'PORT4'))
    elif dtype == DeployType.UNIFIED:
      self.tfs_port_archon = _env_port('PORT', self.tfs_port_archon)
      self.tfs_port_grpc = _env_port('PORT3', self.tfs_port_grpc)
      self.tfs_port_http = _env_port('PORT4', self.tfs_port_http)

  def _free_dense(self):
    self.tfs_dense_port = _free_port(self.tfs_dense_port)
    self.tfs_dense_http_port = _free_port(self.tfs_dense_http_port)
    self.tfs_dense_archon_port = _free_port(self.tfs_dense_archon_port)

  def generate_platform_config_file(self):
    try:
      cpu_limit = os.environ.get('MY_CPU_LIMIT')
      default_threads = int(cpu_limit) if cpu_limit else 16
      session_config = config_pb2.ConfigProto(
          intra_op_parallelism_threads=self.tensorflow_intra_op_parallelism or default_threads,
          inter_op_parallelism_threads=self.tensorflow_inter_op_parallelism or default_threads,
          allow_soft_placement=True)
      session_config.gpu_options.allow_growth = self.allow_growth
      bundle = tfs_platform_protos.SessionBundleConfig(session_config=session_config)
      if self.dense_alone and self.enable_batching:
        batching = bundle.batching_parameters
        batching.max_batch_size.value = 1024
        batching.batch_timeout_micros.value = 800
        batching.max_enqueued_batches.value = 100000
        batching.num_batch_threads.value = 8
        batching.support_diff_dim_size_inputs = True
      bundle.enable_model_warmup = self.enable_model_warmup
      adapter = tfs_platform_protos.SavedModelBundleSourceAdapterConfig(legacy_config=bundle)
      platform_map = platform_config_pb2.PlatformConfigMap()
      platform_map.platform_configs['tensorflow'].source_adapter_config.Pack(adapter)
      os.makedirs(os.path.dirname(os.path.abspath(self.platform_config_file)), exist_ok=True)
      with open(self.platform_config_file, 'w') as fp:
        fp.write(text_format.MessageToString(platform_map))
    except Exception as e:
      logging.error('cannot write platform config file %s: %s', self.platform_config_file, e)
      # A half-written file would make TF Serving fail later with a confusing parse error.
      if os.path.exists(self.platform_config_file):
        os.remove(self.platform_config_file)

  # ---- environment-derived properties ----
  @property
  def num_tce_shard(self) -> int:
    return int(os.environ.get(constants.HOST_SHARD_ENV, 1))

  @property
  def shard_id(self) -> int:
    return int(os.environ.get('SHARD_ID', -1))

  @property
  def idc(self) -> Optional[str]:
    idc = os.environ.get('TCE_INTERNAL_IDC')
    return idc.lower() if idc else None

  @property
  def cluster(self) -> Optional[str]:
    cluster = (os.environ.get('TCE_LOGICAL_CLUSTER') or os.environ.get('TCE_CLUSTER') or
               os.environ.get('TCE_PHYSICAL_CLUSTER'))
    return cluster.lower() if cluster else None

  @property
  def location(self) -> Optional[str]:
    if self.idc and self.cluster:
      return '{}:{}'.format(self.idc, self.cluster)
    return None

  @property
  def path_prefix(self) -> str:
    prefix = '/{}/service/{}'.format(self.bzid, self.base_name)
    if self.dc_aware and self.location:
      return '{}/{}'.format(prefix, self.location)
    return prefix

  @property
  def layout_path(self) -> Optional[str]:
    if self.layout_pattern is None:
      return None
    if self.layout_pattern.startswith('/'):
      return self.layout_pattern
    return '/{}/layouts/{}'.format(self.bzid, self.layout_pattern)

  @property
  def container_cluster(self) -> str:
    return '{};{};{}'.format(os.environ.get('TCE_PSM', 'unknown'), self.idc, self.cluster)

  @property
  def container_id(self) -> str:
    return os.environ.get('MY_POD_NAME') or get_local_ip()

  # ---- model server command and config ----
  def _ports_of(self, server_type: str):
    if self.deploy_type == DeployType.UNIFIED:
      return self.tfs_port_grpc, self.tfs_port_http, self.tfs_port_archon
    if server_type == TFSServerType.PS:
      return self.tfs_ps_port, self.tfs_ps_http_port, self.tfs_ps_archon_port
    if server_type == TFSServerType.DENSE:
      return self.tfs_dense_port, self.tfs_dense_http_port, self.tfs_dense_archon_port
    return self.tfs_entry_port, self.tfs_entry_http_port, self.tfs_entry_archon_port

  def get_cmd_and_port(self, binary: str, server_type: str = None, config_file: str = None):
    server_type = self.deploy_type.compat_server_type(server_type)
    if config_file is None:
      config_file = write_to_tmp_file(self._gen_model_server_config(server_type))
    psm = os.environ.get('TCE_PSM', 'unknown')
    log_conf = '{}/conf/log4j.properties'.format(TFS_HOME)
    if self.deploy_type == DeployType.MIXED and server_type != TFSServerType.ENTRY:
      psm = '{}_{}'.format(psm, server_type)
      log_conf = '{}/conf/log4j_{}.properties'.format(TFS_HOME, server_type)
    grpc_port, http_port, archon_port = self._ports_of(server_type)
    cmd = [
        binary,
        '--model_config_file={}'.format(config_file),
        '--archon_rpc_psm={}'.format(psm),
        '--archon_rpc_cluster={}'.format(self.cluster),
        '--metrics_namespace_prefix={}'.format(psm),
        '--log_conf={}'.format(log_conf),
        '--port={}'.format(grpc_port),
        '--rest_api_port={}'.format(http_port),
        '--archon_port={}'.format(archon_port),
    ]
    if server_type in (TFSServerType.ENTRY, TFSServerType.DENSE):
      cmd += [
          '--archon_entry_to_ps_rpc_timeout={}'.format(self.fetch_ps_timeout_ms),
          '--archon_entry_to_ps_long_conn_num={}'.format(self.fetch_ps_long_conn_num),
          '--archon_entry_to_ps_long_conn_enable={}'.format(
              _flag_value(self.fetch_ps_long_conn_enable)),
          '--archon_entry_to_ps_rpc_retry={}'.format(self.fetch_ps_retry),
          '--archon_async_dispatcher_threads={}'.format(self.aio_thread_num),
      ]
    if server_type == TFSServerType.DENSE and self.enable_batching:
      cmd.append('--enable_batching=true')
    if self.agent_version != 1:
      cmd.append('--model_config_file_poll_wait_seconds=0')
    for name in _TFS_FIELDS:
      value = getattr(self, name)
      if name == 'file_system_poll_wait_seconds':
        if self.agent_version == 1 and server_type == TFSServerType.PS:
          value = self.file_system_poll_wait_seconds_ps
        elif value == _TFS_DEFAULTS[name]:
          continue
        cmd.append('--{}={}'.format(name, _flag_value(value)))
        continue
      if name == 'enable_batching' and server_type == TFSServerType.DENSE:
        continue  # already emitted above
      if value != _TFS_DEFAULTS[name]:
        cmd.append('--{}={}'.format(name, _flag_value(value)))
    return ' '.join(cmd), grpc_port

  def get_cmd(self, binary: str, server_type: str = None, config_file: str = None) -> str:
    return self.get_cmd_and_port(binary, server_type, config_file)[0]

  def get_server_schedule_iter(self, server_type: str):
    if self.deploy_type in (DeployType.MIXED, DeployType.PS):
      if server_type == TFSServerType.PS:
        for i in range(self.num_ps):
          if i % self.num_shard == self.shard_id:
            yield i
      else:
        yield None
    elif self.deploy_type == DeployType.DENSE:
      if server_type == TFSServerType.DENSE:
        # NOTE(upstream): the dense index is the replica id, not a schedule over dense services.
        yield self.replica_id
    else:
      yield None

  def _gen_model_server_config(self, server_type: str = None) -> ModelServerConfig:
    server_type = self.deploy_type.compat_server_type(server_type)
    if self.base_path is None:
      raise ConfError('base_path is required to generate the model server config')
    configs = []

    def add(name, base_path):
      configs.append(
          gen_model_config(name, base_path, version_policy=self.version_policy,
                           version_data=self.version_data))

    rough_base = '{}/{}'.format(self.rough_sort_model_local_path, self.rough_sort_model_name)
    if server_type == TFSServerType.PS:
      for i in self.get_server_schedule_iter(server_type):
        name = 'ps_{}'.format(i)
        add(name, os.path.join(self.base_path, name))
        if (self.rough_sort_model_name and
            self.rough_sort_model_loaded_server == RoughSortModelLoadedServer.PS):
          rough_name = '{}_{}'.format(RoughSortModelPrefix.PS, i)
          add(rough_name, '{}/{}'.format(rough_base, rough_name))
    elif server_type in (TFSServerType.ENTRY, TFSServerType.DENSE):
      name = 'entry' if server_type == TFSServerType.ENTRY else 'dense_0'
      add(name, os.path.join(self.base_path, name))
      prefix = (RoughSortModelPrefix.ENTRY
                if server_type == TFSServerType.ENTRY else RoughSortModelPrefix.DENSE)
      if (self.rough_sort_resource_constrained and
          self.rough_sort_model_loaded_server == RoughSortModelLoadedServer.ENTRY):
        rough_name = '{}_0'.format(RoughSortModelPrefix.ENTRY)
        add(rough_name, os.path.join(self.base_path, rough_name))
      elif (self.rough_sort_model_name and
            self.rough_sort_model_loaded_server == server_type):
        rough_name = '{}_0'.format(prefix)
        add(rough_name, '{}/{}'.format(rough_base, rough_name))
    model_server_config = ModelServerConfig()
    model_server_config.model_config_list.config.extend(configs)
    return model_server_config

  @classmethod
  def from_file(cls, fname: str) -> 'AgentConfig':
    kwarg = {}
    conf_parser(fname, kwarg)
    annotations = {}
    for klass in reversed(cls.__mro__):
      annotations.update(getattr(klass, '__annotations__', {}))
    args = {}
    for key, value in kwarg.items():
      if key in annotations:
        args[key] = _convert(key, value, annotations[key])
      elif key != 'server_type':
        logging.warning('%s: unknown conf key %r (value %r) is ignored', fname, key, value)
    if 'deploy_type' not in args and 'server_type' in kwarg:
      args['deploy_type'] = _convert('server_type', kwarg['server_type'], str)
    return cls(**args)


# ---------------------------------------------------------------- ZooKeeper service paths
class ZKPath(object):
  """Parses `/bzid/service/base_name[/idc:cluster]/server_type:index[/replica_id]`."""

  _NAME = r'[-_0-9A-Za-z]+'
  PAT = re.compile(r'^/(?P<bzid>{n})/service/(?P<base_name>{n})'
                   r'(/(?P<idc>{n}):(?P<cluster>{n}))?'
                   r'/(?P<server_type>\w+):(?P<index>\d+)'
                   r'(/(?P<replica_id>\d+))?$'.format(n=_NAME))

  def __init__(self, path: str):
    self.path = path
    self._group_dict = None
    matched = self.PAT.match(path) if path else None
    if matched:
      self._group_dict = matched.groupdict()
    else:
      logging.info('path not matched: %r', path)

  def __getattr__(self, name):
    if name.startswith('__') or name in ('path', '_group_dict'):
      raise AttributeError(name)
    group_dict = self._group_dict
    if group_dict is None:
      return None
    return group_dict.get(name)

  @property
  def task(self) -> Optional[str]:
    if self.server_type is not None and self.index is not None:
      return '{}:{}'.format(self.server_type, self.index)
    return None

  @property
  def location(self) -> Optional[str]:
    if self.idc is not None and self.cluster is not None:
      return '{}:{}'.format(self.idc, self.cluster)
    return None

  def ship_in(self, idc: str, cluster: str) -> bool:
    if idc is None or cluster is None:
      return True
    return self.idc == idc and self.cluster == cluster


# ---------------------------------------------------------------- name patterns
def parse_pattern(pattern: str, comb_fn: Callable[[List[str], List[str]], Any],
                  brackets: str = '{}'):
  """Splits `pattern` into literal parts and bracketed parts and returns `comb_fn(literals, holes)`.

  `literals` has one more element than `holes`: pattern == l0 + {h0} + l1 + ... + {hn-1} + ln.
  """
  left, right = brackets
  literals, holes = [], []
  rest = pattern
  while True:
    start = rest.find(left)
    if start < 0:
      literals.append(rest)
      break
    end = rest.find(right, start + 1)
    if end < 0:
      raise ValueError('unbalanced {}{} in pattern {!r}'.format(left, right, pattern))
    literals.append(rest[:start])
    holes.append(rest[start + 1:end])
    rest = rest[end + 1:]
  return comb_fn(literals, holes)


def normalize_regex(pattern: str) -> str:
  """`ps_{idx}` -> `ps_(?P<idx>\\d+)`."""

  def comb(literals, holes):
    out = [literals[0]]
    for hole, literal in zip(holes, literals[1:]):
      out.append(r'(?P<{}>\d+)'.format(hole))
      out.append(literal)
    return ''.join(out)

  return parse_pattern(pattern, comb)


def _expand_hole(hole: str, pattern: str) -> List[str]:
  values = []
  for item in hole.split(','):
    item = item.strip()
    if '-' in item:
      start, end = item.split('-', 1)
      try:
        # Upstream semantics: the end of a dash range is exclusive ([1-3] -> 1, 2).
        values.extend(str(i) for i in range(int(start), int(end)))
      except ValueError:
        raise ValueError('bad range {!r} in pattern {!r}'.format(item, pattern)) from None
    elif item:
      values.append(item)
  return values


def expand_pattern(pattern: str) -> List[str]:
  """`ps_[0-2]` -> ['ps_0', 'ps_1']; `ps_[1,3]` -> ['ps_1', 'ps_3']; holes combine as a product."""

  def comb(literals, holes):
    choices = [_expand_hole(hole, pattern) for hole in holes]
    expanded = []
    for picked in product(*choices):
      out = [literals[0]]
      for value, literal in zip(picked, literals[1:]):
        out.append(value)
        out.append(literal)
      expanded.append(''.join(out))
    return expanded

  return parse_pattern(pattern, comb, brackets='[]')


# ---------------------------------------------------------------- request instances
class InstanceFormater(object):
  """Converts a parser.proto.Instance between json / text / binary / dump files and tensors."""

  def __init__(self, inst: proto_parser_pb2.Instance):
    self._inst = inst

  @property
  def instance(self) -> proto_parser_pb2.Instance:
    return self._inst

  def to_tensor_proto(self, batch_size: int) -> tensor_pb2.TensorProto:
    serialized = self._inst.SerializeToString()
    return make_tensor_proto([serialized] * batch_size)

  def to_pb(self, fname: str = None) -> str:
    if fname is None:
      fd, fname = tempfile.mkstemp()
      os.close(fd)
    with open(fname, 'wb') as fp:
      fp.write(self._inst.SerializeToString())
    return fname

  def to_json(self, fname: str = None) -> str:
    content = json_format.MessageToJson(self._inst)
    if fname is None:
      return write_to_tmp_file(content)
    with open(fname, 'w') as fp:
      fp.write(content)
    return fname

  def to_pb_text(self, fname: str = None) -> str:
    content = text_format.MessageToString(self._inst)
    if fname is None:
      return write_to_tmp_file(content)
    with open(fname, 'w') as fp:
      fp.write(content)
    return fname

  @classmethod
  def from_json(cls, fname: str) -> 'InstanceFormater':
    with open(fname) as fp:
      data = json.load(fp)
    return cls(json_format.ParseDict(data, proto_parser_pb2.Instance()))

  @classmethod
  def from_pb_text(cls, fname: str) -> 'InstanceFormater':
    with open(fname) as fp:
      text = '\n'.join(line.strip() for line in fp)
    return cls(text_format.Parse(text, proto_parser_pb2.Instance()))

  @classmethod
  def from_dump(cls, fname: str) -> 'InstanceFormater':
    with open(fname) as fp:
      kwargs = _parse_dump(fp.read().splitlines(), fname)
    return cls(json_format.ParseDict(kwargs, proto_parser_pb2.Instance()))


class _Untyped(object):
  """A container whose kind (object or list) is decided by the first line that fills it."""


def _parse_dump(lines: List[str], fname: str = '<dump>') -> Dict[str, Any]:
  """The line-oriented "dump" tree format (see InstanceFormater.from_dump)."""
  root: Dict[str, Any] = {}
  # Path from the root as (container, key) pairs; the current node is container[key].
  path: List[Any] = []

  def current():
    return path[-1][0][path[-1][1]] if path else root

  def retype_current(value):
    container, key = path[-1]
    container[key] = value
    return value

  def leave_scalar_list():
    # A scalar list is complete once a line other than one of its items follows it.
    while path and isinstance(current(), list):
      path.pop()

  def in_feature_element() -> bool:
    return (len(path) == 2 and path[0] == (root, 'feature') and isinstance(path[1][0], list))

  def fail(lineno, raw, why):
    raise ValueError('{}:{}: {}: {!r}'.format(fname, lineno, why, raw))

  for lineno, raw in enumerate(lines, 1):
    if raw.startswith('"root":') or not raw.strip():
      continue
    parts = raw.split(':')
    if len(parts) != 2:
      fail(lineno, raw, 'expected "key:" or "key: value"')
    key, value = (p.strip().strip('"\'') for p in parts)
    if not key:
      fail(lineno, raw, 'empty key')
    value = int(value) if value.isdigit() else value
    opening = value == ''
    if key.isdigit():
      index = int(key)
      if opening and index > 0:
        leave_scalar_list()
        if not path or not isinstance(path[-1][0], list):
          fail(lineno, raw, 'list element outside a list')
        container = path[-1][0]
        container.append(_Untyped())
        path[-1] = (container, len(container) - 1)
        continue
      node = current()
      if isinstance(node, _Untyped):
        node = retype_current([])
      if not isinstance(node, list) or not path:
        fail(lineno, raw, 'list item outside a list')
      if opening:
        node.append(_Untyped())
        path.append((node, len(node) - 1))
      else:
        node.append(value)
      continue
    leave_scalar_list()
    if opening and in_feature_element() and (key not in FeatureKeys or
                                             (isinstance(current(), dict) and key in current())):
      path.clear()  # the only way back to the root level
    node = current()
    if isinstance(node, _Untyped):
      node = retype_current({})
    if not isinstance(node, dict):
      fail(lineno, raw, 'field inside a list')
    if opening:
      node[key] = _Untyped()
      path.append((node, key))
    else:
      node[key] = value
  return _finalize(root)


def _finalize(node):
  if isinstance(node, _Untyped):
    return {}
  if isinstance(node, dict):
    return {k: _finalize(v) for k, v in node.items()}
  if isinstance(node, list):
    return [_finalize(v) for v in node]
  return node
