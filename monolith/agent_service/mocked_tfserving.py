"""An in-process fake of TensorFlow Serving's gRPC API for tests.

No model is read from disk: every configured model gets synthetic versions that walk through
START -> LOADING -> AVAILABLE (and UNLOADING -> END when removed or superseded) driven by an
event queue, so tests can watch state changes quickly. For a server over real SavedModels use
`monolith.agent_service.model_server`.
"""

import dataclasses
import queue
import random
import threading
import time
from concurrent import futures
from typing import Dict, List, Optional, Union

from absl import logging
import grpc
from google.protobuf import any_pb2
from google.protobuf import text_format

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import status_pb2
from tensorflow_serving.config import model_server_config_pb2

from monolith.agent_service.data_def import ModelState
from monolith.agent_service.utils import gen_model_config

ModelVersionStatus = get_model_status_pb2.ModelVersionStatus
_NOT_FOUND = 5
# How often a random non-specific model gains a new version (exercises `latest` retirement).
NEW_VERSION_INTERVAL = 30


@dataclasses.dataclass
class ModelConf:
  model_name: str
  base_path: str
  version_policy: str = 'latest'
  version_data: Union[int, List[int], None] = None
  model_platform: str = 'tensorflow'
  signature_name: tuple = ('update', 'predict')


@dataclasses.dataclass
class ModelVersion:
  version: int = 0
  version_label: Optional[str] = None
  state: int = ModelState.UNKNOWN


class ModelMeta:

  def __init__(self, conf: ModelConf, versions: Optional[List[ModelVersion]] = None):
    self.conf = conf
    self.versions = versions if versions is not None else [ModelVersion()]
    self._unloading = False

  def is_unloading(self) -> bool:
    return self._unloading

  def set_unloading(self):
    self._unloading = True


@dataclasses.dataclass
class Event:
  model_name: str
  version: int
  state: int


class ModelMgr:
  """Synthetic models and their version state machine."""

  def __init__(self, model_config_list=None):
    self._models: Dict[str, ModelMeta] = {}
    self._lock = threading.RLock()
    self._queue: 'queue.Queue[Event]' = queue.Queue()
    self._thread: Optional[threading.Thread] = None
    self._has_stopped = threading.Event()
    if model_config_list is not None:
      self.load(model_config_list)

  def load(self, model_config_list):
    with self._lock:
      for config in model_config_list:
        policy = config.model_version_policy
        choice = policy.WhichOneof('policy_choice')
        if choice == 'latest' or choice is None:
          num_versions = policy.latest.num_versions or 1
          conf = ModelConf(config.name, config.base_path, 'latest', num_versions)
          versions = [ModelVersion(v) for v in range(1, num_versions + 1)]
        elif choice == 'all':
          # `all` behaves as latest with a single synthetic version.
          conf = ModelConf(config.name, config.base_path, 'latest', None)
          versions = [ModelVersion(1)]
        else:
          wanted = sorted(policy.specific.versions)
          conf = ModelConf(config.name, config.base_path, 'specific', wanted)
          versions = [ModelVersion(v) for v in wanted]
        for label, version in config.version_labels.items():
          for mv in versions:
            if mv.version == version:
              mv.version_label = label
        self._models[config.name] = ModelMeta(conf, versions)
        for mv in versions:
          self._queue.put(Event(config.name, mv.version, ModelState.START))

  def remove(self, model_name_list):
    with self._lock:
      for name in model_name_list:
        meta = self._models.get(name)
        if meta is None:
          continue
        meta.set_unloading()
        for mv in meta.versions:
          self._queue.put(Event(name, mv.version, ModelState.UNLOADING))

  def get_status(self, model_spec) -> List[ModelVersionStatus]:
    with self._lock:
      meta = self._models.get(model_spec.name)
      result = []
      if meta is not None:
        choice = model_spec.WhichOneof('version_choice')
        for mv in meta.versions:
          if (choice is None or choice == 'version' and mv.version == model_spec.version.value or
              choice == 'version_label' and mv.version_label == model_spec.version_label):
            result.append(
                ModelVersionStatus(version=mv.version,
                                   state=mv.state,
                                   status=status_pb2.StatusProto(error_code=0)))
      if not result:
        result.append(
            ModelVersionStatus(version=-1,
                               state=ModelState.UNKNOWN,
                               status=status_pb2.StatusProto(
                                   error_code=_NOT_FOUND,
                                   error_message=f'{model_spec.name} is not found')))
      return result

  def get_metadata(self, model_spec, metadata_field) -> dict:
    with self._lock:
      meta = self._models.get(model_spec.name)
      if meta is None:
        return {}
      result = {
          f: getattr(meta.conf, f) for f in metadata_field if hasattr(meta.conf, f)
      }
      if model_spec.WhichOneof('version_choice') == 'version':
        for mv in meta.versions:
          if mv.version == model_spec.version.value:
            result.update({f: getattr(mv, f) for f in metadata_field if hasattr(mv, f)})
      return result

  def get_alive_model_names(self) -> List[str]:
    with self._lock:
      return [name for name, meta in self._models.items() if not meta.is_unloading()]

  def start(self):
    self._thread = threading.Thread(target=self._poll, daemon=True)
    self._thread.start()

  def stop(self):
    self._has_stopped.set()
    if self._thread is not None:
      self._thread.join()

  def _poll(self):
    last_new_version = time.time()
    while not self._has_stopped.is_set():
      try:
        event = self._queue.get(timeout=0.05)
      except queue.Empty:
        event = None
      if event is not None:
        self._event_handler(event)
      if time.time() - last_new_version >= NEW_VERSION_INTERVAL:
        last_new_version = time.time()
        self._add_random_version()

  def _add_random_version(self):
    with self._lock:
      candidates = [
          m for m in self._models.values()
          if not m.is_unloading() and m.conf.version_policy != 'specific' and m.versions
      ]
      if not candidates:
        return
      meta = random.choice(candidates)
      version = meta.versions[-1].version + 1
      meta.versions.append(ModelVersion(version))
      self._queue.put(Event(meta.conf.model_name, version, ModelState.START))

  def _event_handler(self, event: Event):
    with self._lock:
      meta = self._models.get(event.model_name)
      if meta is None:
        logging.error('model %s not found for event %s', event.model_name, event)
        return
      mv = next((v for v in meta.versions if v.version == event.version), None)
      if mv is None:
        logging.error('version %d of %s not found', event.version, event.model_name)
        return
      follow_up = {
          ModelState.START: ModelState.LOADING,
          ModelState.LOADING: ModelState.AVAILABLE,
      }
      if event.state in (ModelState.START, ModelState.LOADING):
        if meta.is_unloading():
          return
        mv.state = event.state
        self._queue.put(Event(event.model_name, event.version, follow_up[event.state]))
      elif event.state == ModelState.AVAILABLE:
        mv.state = ModelState.AVAILABLE
        if (meta.conf.version_policy == 'latest' and meta.conf.version_data is not None and
            len(meta.versions) > meta.conf.version_data):
          oldest = meta.versions[0]
          self._queue.put(Event(event.model_name, oldest.version, ModelState.UNLOADING))
      elif event.state == ModelState.UNLOADING:
        if mv.state in (ModelState.UNLOADING, ModelState.END):
          return
        mv.state = ModelState.UNLOADING
        self._queue.put(Event(event.model_name, event.version, ModelState.END))
      elif event.state == ModelState.END:
        meta.versions.remove(mv)
        if not meta.versions:
          del self._models[event.model_name]
      else:
        logging.error('unknown event %s', event)
        return
      logging.info('%s version %d -> %s', event.model_name, event.version,
                   ModelState.Name(event.state))


class ModelServiceImpl(model_service_pb2_grpc.ModelServiceServicer):

  def __init__(self, model_mgr: ModelMgr):
    self._model_mgr = model_mgr

  def GetModelStatus(self, request, context):
    return get_model_status_pb2.GetModelStatusResponse(
        model_version_status=self._model_mgr.get_status(request.model_spec))

  def HandleReloadConfigRequest(self, request, context):
    configs = {c.name: c for c in request.config.model_config_list.config}
    old_names = set(self._model_mgr.get_alive_model_names())
    self._model_mgr.remove(old_names - set(configs))
    self._model_mgr.load([configs[n] for n in configs if n not in old_names])
    return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))


class PredictionServiceImpl(prediction_service_pb2_grpc.PredictionServiceServicer):

  def __init__(self, model_mgr: ModelMgr):
    self._model_mgr = model_mgr

  def Predict(self, request, context):
    return predict_pb2.PredictResponse()  # no model behind the fake

  def GetModelMetadata(self, request, context):
    metadata = self._model_mgr.get_metadata(request.model_spec, set(request.metadata_field))
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=request.model_spec)
    for key, value in metadata.items():
      response.metadata[key].CopyFrom(any_pb2.Any(value=bytes(repr(value), 'utf-8')))
    return response


class FakeTFServing:
  """FakeTFServing(model_name, base_path, num_versions, port) or with a model config."""

  def __init__(self,
               model_name: Optional[str] = None,
               base_path: Optional[str] = None,
               num_versions: int = 1,
               port: int = 8500,
               max_workers: int = 10,
               model_config_file: Union[str, model_server_config_pb2.ModelServerConfig,
                                        None] = None):
    if model_config_file is None:
      config_list = [gen_model_config(model_name, base_path, version_data=num_versions)]
    elif isinstance(model_config_file, str):
      config = model_server_config_pb2.ModelServerConfig()
      with open(model_config_file) as f:
        text_format.Parse(f.read(), config)
      config_list = config.model_config_list.config
    else:
      config_list = model_config_file.model_config_list.config
    self.model_mgr = ModelMgr(config_list)
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServiceImpl(self.model_mgr),
                                                              self._server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServiceImpl(self.model_mgr), self._server)
    self.port = self._server.add_insecure_port(f'[::]:{port}')
    self._started = threading.Event()

  def start(self):
    """Serves until `stop()`; meant to run in its own thread."""
    self.model_mgr.start()
    self._server.start()
    self._started.set()
    self._server.wait_for_termination()

  def wait_until_started(self, timeout: float = 10) -> bool:
    return self._started.wait(timeout)

  def stop(self):
    self._server.stop(None).wait()
    self.model_mgr.stop()
