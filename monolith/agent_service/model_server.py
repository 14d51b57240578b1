"""Built-in model server speaking TensorFlow Serving's gRPC API.

`tensorflow_model_server` cannot be installed everywhere, yet the agent launches and watches a
model server per role. This server implements the part of TF Serving the agent and its clients
use: `ModelService` (GetModelStatus, HandleReloadConfigRequest) and `PredictionService`
(Predict, GetModelMetadata) over real SavedModels loaded with TensorFlow, driven by a text
`ModelServerConfig` that is re-read every `--model_config_file_poll_wait_seconds`.

Version directories are the numeric children of each model's base path (as in TF Serving's
file-system source); the version policy picks the aspired ones; each version moves through
START -> LOADING -> AVAILABLE -> UNLOADING -> END, and a failed load ends in END with the error.
"""

import os
import signal
import sys
import threading
from concurrent import futures
from typing import Dict, List, Optional

from absl import app, flags, logging
import grpc
from google.protobuf import text_format

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.apis import status_pb2

State = get_model_status_pb2.ModelVersionStatus.State
DEFAULT_SIGNATURE = 'serving_default'
# tensorflow.error.Code numbers (== gRPC status numbers for 0..16).
_OK, _NOT_FOUND, _UNKNOWN = 0, 5, 2

# The flags the launchers pass through to this server when no real TF Serving binary exists.
SUPPORTED_FLAGS = ('port', 'model_config_file', 'model_config_file_poll_wait_seconds',
                   'file_system_poll_wait_seconds')


class ModelServerError(Exception):
  """An error with the gRPC status code it maps to."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message


def parse_model_server_config(text: str,
                              source: str) -> model_server_config_pb2.ModelServerConfig:
  """Parses and validates a text ModelServerConfig; `source` names it in errors."""
  config = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'malformed ModelServerConfig in {source}: {e}') from e
  validate_config(config, source)
  return config


def validate_config(config: model_server_config_pb2.ModelServerConfig, source: str):
  if config.WhichOneof('config') == 'custom_model_config':
    raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'{source}: custom_model_config is not supported')
  seen = set()
  for mc in config.model_config_list.config:
    if not mc.name:
      raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                             f'{source}: a model config has an empty name')
    if mc.name in seen:
      raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                             f'{source}: model name {mc.name!r} is not unique')
    seen.add(mc.name)
    if not mc.base_path:
      raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                             f'{source}: model {mc.name!r} has an empty base_path')
    if mc.model_platform and mc.model_platform != 'tensorflow':
      raise ModelServerError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'{source}: model {mc.name!r} has unsupported platform {mc.model_platform!r}')


def _status(code: int = _OK, message: str = '') -> status_pb2.StatusProto:
  return status_pb2.StatusProto(error_code=code, error_message=message)


def list_versions(base_path: str) -> Dict[int, str]:
  """Numeric children of `base_path` -> their paths; others (e.g. `123-temp`) are ignored."""
  try:
    names = os.listdir(base_path)
  except OSError:
    return {}
  versions = {}
  for name in names:
    path = os.path.join(base_path, name)
    if name.isdigit() and os.path.isdir(path):
      versions[int(name)] = path
  return versions


def aspired_versions(policy, available: List[int]) -> List[int]:
  """The versions a ServableVersionPolicy selects among those on disk."""
  choice = policy.WhichOneof('policy_choice')
  if choice == 'all':
    return sorted(available)
  if choice == 'specific':
    wanted = set(policy.specific.versions)
    return sorted(v for v in available if v in wanted)
  num = policy.latest.num_versions if choice == 'latest' else 1
  return sorted(available)[-max(num, 1):]


class _Version:
  """One version of a served model; `state` follows TF Serving's ModelVersionStatus.State."""

  def __init__(self, version: int, path: str):
    self.version = version
    self.path = path
    self.state = State.START
    self.status = _status()
    self.loaded = None  # the object tf.saved_model.load returned
    self.signature_defs = None  # SignatureDef map of the loaded MetaGraph


class _Model:

  def __init__(self, config):
    self.name = config.name  # kept apart: `config` is None once the model is retired
    self.config = config
    self.versions: Dict[int, _Version] = {}


def _load_saved_model(version: _Version):
  import tensorflow as tf
  from tensorflow.core.protobuf import saved_model_pb2
  version.loaded = tf.saved_model.load(version.path, tags=['serve'])
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(version.path, 'saved_model.pb'), 'rb') as f:
    proto.ParseFromString(f.read())
  meta = next((m for m in proto.meta_graphs if 'serve' in m.meta_info_def.tags),
              proto.meta_graphs[0])
  version.signature_defs = dict(meta.signature_def)


class ModelServerCore:
  """Models, versions and their states; all mutations happen under `_lock`."""

  def __init__(self, file_system_poll_wait_seconds: float = 1.0, num_load_threads: int = 2):
    self._lock = threading.RLock()
    self._models: Dict[str, _Model] = {}
    self._loader = futures.ThreadPoolExecutor(max_workers=max(num_load_threads, 1),
                                              thread_name_prefix='model_loader')
    self._poll_wait = file_system_poll_wait_seconds
    self._stopped = threading.Event()
    self._poll_thread = threading.Thread(target=self._poll_loop, daemon=True)

  def start(self):
    self.poll_file_system()
    self._poll_thread.start()

  def stop(self):
    self._stopped.set()
    if self._poll_thread.is_alive():
      self._poll_thread.join()
    self._loader.shutdown(wait=True)

  def reload_config(self, config: model_server_config_pb2.ModelServerConfig):
    """Makes the served models exactly those of `config` (as TF Serving's ReloadConfig)."""
    validate_config(config, 'ReloadConfigRequest')
    with self._lock:
      new = {mc.name: mc for mc in config.model_config_list.config}
      for name in list(self._models):
        if name not in new:
          self._retire_model(self._models[name])
      for name, mc in new.items():
        model = self._models.get(name)
        if model is None:
          self._models[name] = _Model(mc)
        else:
          model.config = mc
    self.poll_file_system()

  def _retire_model(self, model: _Model):
    model.config = None  # no config: every version becomes unaspired
    for v in model.versions.values():
      self._begin_unload(model, v)

  def _poll_loop(self):
    while not self._stopped.wait(self._poll_wait):
      try:
        self.poll_file_system()
      except Exception:  # pylint: disable=broad-except
        logging.exception('file system poll failed')

  def poll_file_system(self):
    """Aligns every model's versions with its base path and version policy."""
    with self._lock:
      for model in list(self._models.values()):
        self._sync_model(model)

  def _sync_model(self, model: _Model):
    if model.config is None:
      if all(v.state == State.END for v in model.versions.values()):
        del self._models[model.name]
      return
    on_disk = list_versions(model.config.base_path)
    aspired = set(aspired_versions(model.config.model_version_policy, list(on_disk)))
    for version, v in list(model.versions.items()):
      if v.state == State.END and version not in on_disk:
        del model.versions[version]  # so a directory that comes back is loaded again
    for version in sorted(aspired):
      if version not in model.versions:  # a failed load stays END with its error
        self._begin_load(model, _Version(version, on_disk[version]))
    # Availability preserving: retire old versions only once every aspired one settled.
    settled = all(model.versions[v].state in (State.AVAILABLE, State.END) for v in aspired)
    for version, v in list(model.versions.items()):
      gone = version not in on_disk
      if version not in aspired and (settled or gone):
        self._begin_unload(model, v)

  def _begin_load(self, model: _Model, version: _Version):
    model.versions[version.version] = version
    logging.info('Loading servable: {name: %s version: %d} from %s', model.name,
                 version.version, version.path)
    self._loader.submit(self._load, model, version)

  def _load(self, model: _Model, version: _Version):
    with self._lock:
      if version.state != State.START:
        return
      version.state = State.LOADING
    try:
      _load_saved_model(version)
    except Exception as e:  # pylint: disable=broad-except
      logging.error('Loading servable {name: %s version: %d} failed: %s', model.name,
                    version.version, e)
      with self._lock:
        version.state = State.END
        version.status = _status(_UNKNOWN, f'loading {version.path} failed: {e}')
      return
    with self._lock:
      if version.state == State.LOADING:
        version.state = State.AVAILABLE
        logging.info('Successfully loaded servable version {name: %s version: %d}',
                     model.name, version.version)
      unload_now = version.state == State.UNLOADING
    if unload_now:
      self._unload(model, version)
    self.poll_file_system()

  def _begin_unload(self, model: _Model, version: _Version):
    if version.state in (State.UNLOADING, State.END):
      return
    was_loading = version.state == State.LOADING
    version.state = State.UNLOADING
    if was_loading:
      return  # `_load` finishes the unload once TensorFlow returns
    if version.loaded is None:
      version.state = State.END
      return
    self._loader.submit(self._unload, model, version)

  def _unload(self, model: _Model, version: _Version):
    with self._lock:
      version.loaded = None
      version.signature_defs = None
      version.state = State.END
    logging.info('Unloaded servable version {name: %s version: %d}', model.name,
                 version.version)

  # ---- queries -------------------------------------------------------------------------------

  def _find_model(self, name: str) -> _Model:
    model = self._models.get(name)
    if model is None or not model.versions and model.config is None:
      raise ModelServerError(grpc.StatusCode.NOT_FOUND,
                             f'Could not find any versions of model {name}')
    return model

  def _requested_version(self, model: _Model, spec) -> Optional[int]:
    choice = spec.WhichOneof('version_choice')
    if choice == 'version':
      return spec.version.value
    if choice == 'version_label':
      labels = model.config.version_labels if model.config is not None else {}
      if spec.version_label not in labels:
        raise ModelServerError(
            grpc.StatusCode.NOT_FOUND,
            f'Unrecognized servable version label: {spec.version_label} of model {model.name}')
      return labels[spec.version_label]
    return None

  def get_status(self, spec) -> List[get_model_status_pb2.ModelVersionStatus]:
    with self._lock:
      model = self._find_model(spec.name)
      if not model.versions:
        base = model.config.base_path
        detail = 'does not exist' if not os.path.isdir(base) else 'has no version directory'
        raise ModelServerError(
            grpc.StatusCode.NOT_FOUND,
            f'Could not find any versions of model {spec.name}: base path {base} {detail}')
      wanted = self._requested_version(model, spec)
      versions = sorted(model.versions.values(), key=lambda v: -v.version)
      if wanted is not None:
        versions = [v for v in versions if v.version == wanted]
        if not versions:
          raise ModelServerError(grpc.StatusCode.NOT_FOUND,
                                 f'Could not find version {wanted} of model {spec.name}')
      return [
          get_model_status_pb2.ModelVersionStatus(version=v.version,
                                                  state=v.state,
                                                  status=v.status) for v in versions
      ]

  def servable(self, spec) -> _Version:
    """The AVAILABLE version a request addresses (the latest one when none is named)."""
    with self._lock:
      model = self._models.get(spec.name)
      wanted = self._requested_version(model, spec) if model is not None else None
      available = [] if model is None else [
          v for v in model.versions.values() if v.state == State.AVAILABLE
      ]
      if wanted is not None:
        available = [v for v in available if v.version == wanted]
      if not available:
        which = f'Specific({spec.name}, {wanted})' if wanted is not None else \
            f'Latest({spec.name})'
        raise ModelServerError(grpc.StatusCode.NOT_FOUND,
                               f'Servable not found for request: {which}')
      return max(available, key=lambda v: v.version)


def _signature(version: _Version, name: str):
  name = name or DEFAULT_SIGNATURE
  fn = version.loaded.signatures.get(name) if version.loaded is not None else None
  if fn is None or name not in version.signature_defs:
    raise ModelServerError(grpc.StatusCode.FAILED_PRECONDITION,
                           f'Serving signature key "{name}" not found.')
  return name, fn


def predict(core: ModelServerCore, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
  import tensorflow as tf
  version = core.servable(request.model_spec)
  sig_name, fn = _signature(version, request.model_spec.signature_name)
  sig_def = version.signature_defs[sig_name]
  expected, given = set(sig_def.inputs), set(request.inputs)
  if expected != given:
    raise ModelServerError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'input size does not match signature: {len(given)}!={len(expected)}. '
        f'Sent extra: {sorted(given - expected)}. Missing but required: {sorted(expected - given)}.')
  unknown_outputs = set(request.output_filter) - set(sig_def.outputs)
  if unknown_outputs:
    raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                           f'output tensor alias not found in signature: {sorted(unknown_outputs)}')
  kwargs = {}
  for alias, tensor_proto in request.inputs.items():
    want = sig_def.inputs[alias].dtype
    if tensor_proto.dtype != want:
      raise ModelServerError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'Expects arg[{alias}] to be {tf.dtypes.as_dtype(want).name} but '
          f'{tf.dtypes.as_dtype(tensor_proto.dtype).name} is provided')
    try:
      kwargs[alias] = tf.constant(tf.make_ndarray(tensor_proto))
    except Exception as e:  # pylint: disable=broad-except
      raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                             f'input {alias!r} is not a valid TensorProto: {e}') from e
  try:
    outputs = fn(**kwargs)
  except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
    raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from e
  response = predict_pb2.PredictResponse()
  response.model_spec.name = request.model_spec.name
  response.model_spec.version.value = version.version
  response.model_spec.signature_name = sig_name
  wanted = set(request.output_filter) or set(outputs)
  for alias, tensor in outputs.items():
    if alias in wanted:
      response.outputs[alias].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
  return response


def get_model_metadata(core: ModelServerCore, request):
  md = get_model_metadata_pb2
  if not request.metadata_field:
    raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                           'GetModelMetadataRequest must specify at least one metadata_field')
  version = core.servable(request.model_spec)
  response = md.GetModelMetadataResponse()
  response.model_spec.name = request.model_spec.name
  response.model_spec.version.value = version.version
  for field in request.metadata_field:
    if field != 'signature_def':
      raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                             f'Metadata field {field} is not supported')
    sig_map = md.SignatureDefMap()
    for name, sig in (version.signature_defs or {}).items():
      sig_map.signature_def[name].CopyFrom(sig)
    response.metadata[field].Pack(sig_map)
  return response


def _serve(fn):
  """Maps ModelServerError to the gRPC status; anything else is INTERNAL, never a crash."""

  def wrapper(self, request, context):
    try:
      return fn(self, request, context)
    except ModelServerError as e:
      context.abort(e.code, e.message)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception('%s failed', fn.__name__)
      context.abort(grpc.StatusCode.INTERNAL, f'{fn.__name__} failed: {e}')

  return wrapper


class ModelServiceImpl(model_service_pb2_grpc.ModelServiceServicer):

  def __init__(self, core: ModelServerCore):
    self._core = core

  @_serve
  def GetModelStatus(self, request, context):
    return get_model_status_pb2.GetModelStatusResponse(
        model_version_status=self._core.get_status(request.model_spec))

  @_serve
  def HandleReloadConfigRequest(self, request, context):
    self._core.reload_config(request.config)
    return model_management_pb2.ReloadConfigResponse(status=_status())


class PredictionServiceImpl(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, core: ModelServerCore):
    self._core = core

  @_serve
  def Predict(self, request, context):
    return predict(self._core, request)

  @_serve
  def GetModelMetadata(self, request, context):
    return get_model_metadata(self._core, request)


class ModelServer:
  """Core + gRPC server + the model-config-file poller."""

  def __init__(self,
               port: int,
               model_config_file: Optional[str] = None,
               model_config_file_poll_wait_seconds: float = 0,
               file_system_poll_wait_seconds: float = 1.0,
               max_workers: int = 16):
    self._config_file = model_config_file
    self._config_poll_wait = model_config_file_poll_wait_seconds
    self._config_text = None
    self.core = ModelServerCore(file_system_poll_wait_seconds)
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServiceImpl(self.core),
                                                              self._server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServiceImpl(self.core), self._server)
    self.port = self._server.add_insecure_port(f'[::]:{port}')
    if self.port == 0:
      raise ModelServerError(grpc.StatusCode.UNAVAILABLE, f'cannot bind port {port}')
    self._stopped = threading.Event()
    self._config_thread = threading.Thread(target=self._config_poll_loop, daemon=True)

  def _read_config_file(self, strict: bool):
    """Applies the config file when it changed; a bad file is fatal only at startup."""
    try:
      with open(self._config_file) as f:
        text = f.read()
      if text == self._config_text:
        return
      config = parse_model_server_config(text, self._config_file)
    except (OSError, ModelServerError) as e:
      if strict:
        raise ModelServerError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'cannot use --model_config_file: {e}') from e
      logging.error('keeping the current models, cannot use %s: %s', self._config_file, e)
      return
    self._config_text = text
    self.core.reload_config(config)

  def _config_poll_loop(self):
    while not self._stopped.wait(self._config_poll_wait):
      self._read_config_file(strict=False)

  def start(self):
    if self._config_file:
      self._read_config_file(strict=True)
    self.core.start()
    self._server.start()
    if self._config_file and self._config_poll_wait > 0:
      self._config_thread.start()
    logging.info('Running gRPC ModelServer at 0.0.0.0:%d ...', self.port)

  def stop(self, grace: Optional[float] = None):
    self._stopped.set()
    self._server.stop(grace).wait()
    if self._config_thread.is_alive():
      self._config_thread.join()
    self.core.stop()

  def wait_for_termination(self):
    self._server.wait_for_termination()


def builtin_command(tfs_args: List[str]) -> List[str]:
  """The command starting this server with the flags it supports out of a TF Serving command.

  Launchers build TF Serving command lines (archon ports, log configs, ...); only the flags
  listed in SUPPORTED_FLAGS mean something here, the rest are dropped."""
  args = []
  for arg in tfs_args:
    name = arg.lstrip('-').split('=', 1)[0]
    if arg.startswith('--') and name in SUPPORTED_FLAGS:
      args.append(arg)
  return python_module_command('monolith.agent_service.model_server', args)


def python_module_command(module: str, args: List[str]) -> List[str]:
  """`python -P -m module args`: -P keeps the cwd off sys.path, so a launch from a source
  checkout still imports the package from PYTHONPATH (`builtin_env`), where the generated
  protos are."""
  return [sys.executable, '-P', '-m', module] + args


def builtin_env(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """`env` plus a PYTHONPATH that lets `python -m` find this package (also under Bazel)."""
  env = dict(os.environ if env is None else env)
  paths = [p for p in sys.path if p]
  if env.get('PYTHONPATH'):
    paths.append(env['PYTHONPATH'])
  env['PYTHONPATH'] = os.pathsep.join(paths)
  return env


def resolve_tfs_binary(candidate: Optional[str]) -> Optional[str]:
  """`candidate` when it is an executable TF Serving binary, else None (use this server)."""
  if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
    return candidate
  return None


FLAGS = flags.FLAGS


def define_flags():
  # Defined only when run as a program: the agent imports this module next to its own flags.
  flags.DEFINE_integer('port', 8500, 'Port to listen on for the gRPC API.')
  flags.DEFINE_string('model_config_file', '',
                      'Text ModelServerConfig naming the models to serve.')
  flags.DEFINE_float('model_config_file_poll_wait_seconds', 0,
                     'Seconds between re-reads of --model_config_file; 0 reads it once.')
  flags.DEFINE_float('file_system_poll_wait_seconds', 1,
                     'Seconds between scans of the model base paths for new versions.')


# TensorFlow releases the GIL while a signature runs; getting it back from the gRPC poller costs
# up to one switch interval (5 ms by default), which was the whole p99 of a small Predict.
GIL_SWITCH_INTERVAL_S = 0.0005


def main(argv):
  del argv
  sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
  try:
    server = ModelServer(FLAGS.port, FLAGS.model_config_file or None,
                         FLAGS.model_config_file_poll_wait_seconds,
                         max(FLAGS.file_system_poll_wait_seconds, 0.1))
    server.start()
  except ModelServerError as e:
    logging.error('%s', e.message)
    print(e.message, file=sys.stderr)
    return 1

  def handle_signal(signum, frame):
    del frame
    logging.info('received signal %d, shutting down', signum)
    threading.Thread(target=server.stop, args=(1,)).start()

  signal.signal(signal.SIGTERM, handle_signal)
  signal.signal(signal.SIGINT, handle_signal)
  server.wait_for_termination()
  return 0


def cli():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  cli()
