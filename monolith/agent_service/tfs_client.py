"""Model-server client: status, metadata, config reload, Predict and a latency profile.

  tfs_client --conf=agent.conf --cmd_type=status|meta|load|profile|get [--model_name=entry]
Predict (`get`) sends `instances` (serialized Instances), `example_batch` (one ExampleBatch) or,
for other input types, an ExampleBatch file converted row by row to Instances.
"""

import os
import random
import socket
import struct
import sys
import threading
import time
import uuid
from typing import List, Optional

from absl import flags, logging
import grpc
from google.protobuf import text_format

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from idl.matrix.proto import example_pb2
from idl.matrix.proto import line_id_pb2
from idl.matrix.proto import proto_parser_pb2
from monolith import utils
from monolith.agent_service import client  # defines the shared client flags
from monolith.agent_service.utils import AgentConfig, DeployType, TFSServerType, \
  gen_model_spec, make_tensor_proto
from monolith.native_training import env_utils

FLAGS = flags.FLAGS
flags.DEFINE_string('signature_name', 'serving_default', 'Signature to call.')
flags.DEFINE_string('feature_list', None, 'feature_list.conf of the model.')
flags.DEFINE_string('file_type', 'pb', 'Input file type: pb or pbtxt.')
flags.DEFINE_integer('batch_size', 8, 'Batch size of generated requests.')
flags.DEFINE_bool('lagrangex_header', False, 'Records start with an 8-byte lagrangex header.')
flags.DEFINE_bool('has_sort_id', False, 'Records carry a sort id.')
flags.DEFINE_bool('kafka_dump', False, 'Records carry an 8-byte kafka dump header.')
flags.DEFINE_bool('kafka_dump_prefix', False, 'Records carry a kafka dump size prefix.')
flags.DEFINE_integer('parallel_num', 1, 'Profile threads.')
flags.DEFINE_integer('profile_duration', 600, 'Profile seconds.')
flags.DEFINE_string('profile_data_dir', None, 'Directory of profile request files.')

VALID_SLOTS = []
_NUM_SLOTS = 6
_VOCAB_SIZES = [5, 5, 5, 5, 5, 5]
SKIP_LIST = {'__LABEL__', '__LINE_ID__', '_dense', 'sample_rate'}
_PREDICT_TIMEOUT = 30
_MAX_PROFILE_FILES = 500
_NUM_PROFILE_INSTANCES = 16  # distinct random requests cycled by `profile --input_type=instance`


def _read_exact(stream, size: int) -> bytes:
  data = stream.read(size)
  if len(data) != size:
    raise EOFError(f'expected {size} bytes, got {len(data)}')
  return data


def _read_u64(stream) -> int:
  return struct.unpack('<Q', _read_exact(stream, 8))[0]


def read_header(stream):
  int_size = 8
  if FLAGS.lagrangex_header:
    return _read_exact(stream, int_size)
  aggregate_page_sortid_size = 0
  if FLAGS.kafka_dump_prefix:
    size = _read_u64(stream)
    if size == 0:
      _read_u64(stream)
    else:
      aggregate_page_sortid_size = size
  if FLAGS.has_sort_id:
    size = aggregate_page_sortid_size or _read_u64(stream)
    _read_exact(stream, size)
  if FLAGS.kafka_dump:
    _read_exact(stream, int_size)
  return None


def read_data(stream) -> bytes:
  read_header(stream)
  return _read_exact(stream, _read_u64(stream))


def generate_random_instance(slots: Optional[List[int]] = None,
                             vocab_sizes: List[int] = _VOCAB_SIZES) -> bytes:
  if slots is None:
    slots = list(range(1, len(vocab_sizes) + 1))
  max_vocab = max(vocab_sizes)
  fids = []
  for i, slot in enumerate(slots):
    for _ in range(vocab_sizes[i]):
      fids.append((slot << 54) | (i * max_vocab + random.randint(1, vocab_sizes[i])))
  return proto_parser_pb2.Instance(fid=fids).SerializeToString()


def generate_random_example_batch(feature_list, batch_size: int = 256) -> bytes:
  example_batch = example_pb2.ExampleBatch(batch_size=batch_size)
  for feature in feature_list:
    if any(token in feature.name for token in SKIP_LIST):
      continue
    if '_id' not in feature.name and '_name' not in feature.name:
      continue
    named = example_batch.named_feature_list.add(name=feature.name)
    for _ in range(batch_size):
      fids = named.feature.add().fid_v2_list.value
      args = getattr(feature, 'args', None) or []
      if (feature.method or '').startswith('vectortop') and args and str(args[0]).isdigit():
        num = int(args[0])
        if num > 0:
          num = random.randint(1, num)
        fids.extend((feature.slot << 48) | random.randint(1, sys.maxsize - 1) for _ in range(num))
      else:
        fids.append((feature.slot << 48) | random.randint(1, (1 << 48) - 1))
  line_ids = example_batch.named_feature_list.add(name='__LINE_ID__')
  now_ts = int(time.time())
  for _ in range(batch_size):
    line_id = line_id_pb2.LineId(sample_rate=0.001,
                                 req_time=now_ts - random.randint(1, 1000),
                                 actions=[random.randint(1, 3), random.randint(3, 5)])
    line_ids.feature.add().bytes_list.value.append(line_id.SerializeToString())
  return example_batch.SerializeToString()


def _feature_list():
  from monolith.native_training.data.feature_list import FeatureList
  return FeatureList.parse(FLAGS.feature_list)


def gen_random_file(input_file: str, variant_type: str = 'example_batch'):
  assert input_file is not None, 'gen_random_file needs an output file'
  assert VALID_SLOTS, 'VALID_SLOTS is empty: no slot to generate data for'
  from monolith.native_training.model_export import data_gen_utils
  args = data_gen_utils.ParserArgs(sparse_features=[f'fc_slot_{s}' for s in VALID_SLOTS],
                                   extra_features=['sample_rate', 'req_time', 'uid', 'actions'],
                                   extra_feature_shapes=[1, 1, 1, 1],
                                   batch_size=FLAGS.batch_size,
                                   variant_type=variant_type)
  data_gen_utils.gen_random_data_file(input_file,
                                      args,
                                      num_batch=1,
                                      sort_id=FLAGS.has_sort_id,
                                      kafka_dump=FLAGS.kafka_dump,
                                      actions=list(range(1, 13)))


def get_instance_proto(input_file: Optional[str] = None, batch_size: int = 256):
  if input_file is None:
    instances = [generate_random_instance() for _ in range(batch_size)]
  else:
    instances = []
    with open(input_file, 'rb') as stream:
      for _ in range(batch_size):
        inst = proto_parser_pb2.Instance()
        inst.ParseFromString(read_data(stream))
        instances.append(inst.SerializeToString())
  return make_tensor_proto(instances)


def _read_example_batch(input_file: str, file_type: str) -> example_pb2.ExampleBatch:
  example_batch = example_pb2.ExampleBatch()
  if file_type == 'pbtxt':
    with open(input_file) as f:
      text_format.Parse(f.read(), example_batch)
  elif file_type == 'pb':
    with open(input_file, 'rb') as stream:
      example_batch.ParseFromString(read_data(stream))
  else:
    raise ValueError(f'file_type must be pb or pbtxt, got {file_type!r}')
  return example_batch


def get_example_batch_proto(input_file: Optional[str] = None,
                            feature_list=None,
                            batch_size: int = 256,
                            file_type: str = 'pb'):
  if input_file is None:
    serialized = generate_random_example_batch(feature_list, batch_size)
  else:
    serialized = _read_example_batch(input_file, file_type).SerializeToString()
  return make_tensor_proto([serialized])


def get_example_batch_proto_v2(input_file: str):
  if not os.path.exists(input_file):
    gen_random_file(input_file)
  from monolith.native_training.data.feature_list import get_feature_name_and_slot
  with open(input_file, 'rb') as stream:
    example_batch = example_pb2.ExampleBatch()
    example_batch.ParseFromString(read_data(stream))
  feature_list = _feature_list()
  user_fname_set = {get_feature_name_and_slot(slot)[0] for slot in feature_list.user_features}
  for named in example_batch.named_feature_list:
    if named.name in user_fname_set:
      named.type = example_pb2.FeatureListType.SHARED
      first = example_pb2.Feature()
      first.CopyFrom(named.feature[0])
      del named.feature[:]
      for _ in range(example_batch.batch_size):
        named.feature.add().CopyFrom(first)
  return make_tensor_proto([example_batch.SerializeToString()])


def get_example_batch_to_instance(input_file: str, file_type: str):
  example_batch = _read_example_batch(input_file, file_type)
  mask = (1 << 48) - 1
  inst_list = []
  for i in range(example_batch.batch_size):
    inst = proto_parser_pb2.Instance()
    for named in example_batch.named_feature_list:
      if named.type == example_pb2.FeatureListType.SHARED:
        feature = named.feature[0]
      elif i < len(named.feature):
        feature = named.feature[i]
      else:
        raise ValueError(f'{input_file}: feature list {named.name!r} has {len(named.feature)} '
                         f'rows, batch_size is {example_batch.batch_size}')
      if named.name == '__LABEL__':
        inst.label.extend(feature.float_list.value)
      elif named.name == '__LINE_ID__':
        if feature.bytes_list.value:
          inst.line_id.ParseFromString(feature.bytes_list.value[0])
      else:
        kind = feature.WhichOneof('type')
        if kind is None:
          continue
        out = inst.feature.add(name=named.name)
        if kind == 'fid_v1_list':
          out.fid.extend(((v >> 54) << 48) | (mask & v) for v in feature.fid_v1_list.value)
        elif kind == 'fid_v2_list':
          out.fid.extend(feature.fid_v2_list.value)
        elif kind in ('float_list', 'double_list'):
          out.float_value.extend(getattr(feature, kind).value)
        elif kind == 'int64_list':
          out.int64_value.extend(feature.int64_list.value)
        elif kind == 'bytes_list':
          out.bytes_value.extend(feature.bytes_list.value)
    inst_list.append(inst.SerializeToString())
  return make_tensor_proto(inst_list)


class ProfileThread(threading.Thread):

  def __init__(self,
               job_id: int,
               stubs,
               example_batches,
               model_name: str,
               repeat_time: int,
               input_name: str = 'example_batch'):
    super().__init__(daemon=True)
    self._job_id = job_id
    self._stubs = stubs
    self._example_batches = example_batches
    self._model_name = model_name
    self._repeat_time = repeat_time
    self._input_name = input_name
    self._latencies: List[float] = []

  def run(self):
    run_st = int(time.time())
    count, show_count = 0, 0
    while int(time.time()) - run_st < self._repeat_time:
      elapsed = int(time.time()) - run_st
      if self._job_id == 0 and elapsed // 60 > show_count:
        show_count = elapsed // 60
        logging.info('profile: %d s, %d requests', elapsed, count)
      request = predict_pb2.PredictRequest(
          model_spec=gen_model_spec(self._model_name, signature_name=FLAGS.signature_name))
      request.inputs[self._input_name].CopyFrom(random.choice(self._example_batches))
      stub = random.choice(self._stubs)
      start = time.time()
      try:
        stub.Predict(request, timeout=_PREDICT_TIMEOUT)
        self._latencies.append((time.time() - start) * 1000)
        count += 1
      except grpc.RpcError as e:
        logging.warning('predict failed: %s', e.details())

  def get_result(self) -> List[float]:
    self.join()
    return self._latencies


def _print_predict_response(response):
  import tensorflow as tf
  print(response)
  for alias, tensor in sorted(response.outputs.items()):
    print(f'{alias}: {tf.make_ndarray(tensor).tolist()}')


def main(argv):
  del argv
  try:
    from monolith.native_training.data.utils import enable_tob_env
    enable_tob_env()
  except ImportError:
    logging.info('monolith.native_training.data is not available, skipping enable_tob_env')
  env_utils.setup_host_ip()
  if not FLAGS.conf:
    print('tfs_client: --conf is required', file=sys.stderr)
    return 1
  agent_conf = AgentConfig.from_file(FLAGS.conf)
  host = os.environ.get('MY_HOST_IP') or socket.gethostbyname(socket.gethostname())
  deploy_type = agent_conf.deploy_type
  model_name = FLAGS.model_name
  if not model_name:
    if deploy_type == DeployType.PS:
      model_name = f'ps_{agent_conf.shard_id}'
    elif deploy_type == DeployType.DENSE:
      model_name = TFSServerType.DENSE
    else:
      model_name = TFSServerType.ENTRY
  if deploy_type == DeployType.PS:
    port = agent_conf.tfs_ps_port
  elif deploy_type == DeployType.DENSE:
    port = agent_conf.tfs_dense_port
  elif deploy_type == DeployType.UNIFIED:
    port = agent_conf.tfs_port_grpc
  else:
    port = agent_conf.tfs_entry_port
  targets = (FLAGS.target or f'{host}:{port}').split(',')
  channel_list = [grpc.insecure_channel(t) for t in targets]
  channel = channel_list[0]

  try:
    if FLAGS.cmd_type == 'status':
      request = get_model_status_pb2.GetModelStatusRequest(
          model_spec=gen_model_spec(model_name, signature_name=FLAGS.signature_name))
      print(model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request))
    elif FLAGS.cmd_type == 'meta':
      request = get_model_metadata_pb2.GetModelMetadataRequest(
          model_spec=gen_model_spec(model_name, signature_name=FLAGS.signature_name),
          metadata_field=['base_path', 'num_versions', 'signature_name'])
      print(prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request))
    elif FLAGS.cmd_type == 'load':
      config = model_server_config_pb2.ModelServerConfig()
      with open(FLAGS.input_file) as f:
        text_format.Parse(f.read(), config)
      request = model_management_pb2.ReloadConfigRequest(config=config)
      response = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(
          request)
      logging.info('load done')
      print(response.status)
    elif FLAGS.cmd_type == 'profile':
      if FLAGS.input_type == 'instance':
        # Random Instances need no feature list or data generator (unlike upstream's only
        # mode below), so any model taking `instances` strings can be profiled.
        input_name = 'instances'
        requests = [
            get_instance_proto(None, FLAGS.batch_size) for _ in range(_NUM_PROFILE_INSTANCES)
        ]
      else:
        assert VALID_SLOTS, 'VALID_SLOTS is empty: profile needs slots to generate requests'
        input_name = 'example_batch'
        os.makedirs(FLAGS.profile_data_dir, exist_ok=True)
        files = sorted(os.listdir(FLAGS.profile_data_dir))[:_MAX_PROFILE_FILES]
        paths = [os.path.join(FLAGS.profile_data_dir, f) for f in files]
        while len(paths) < _MAX_PROFILE_FILES:
          path = os.path.join(FLAGS.profile_data_dir, uuid.uuid4().hex)
          gen_random_file(path)
          paths.append(path)
        requests = [get_example_batch_proto_v2(p) for p in paths]
      stubs = [prediction_service_pb2_grpc.PredictionServiceStub(c) for c in channel_list]
      threads = [
          ProfileThread(i, stubs, requests, model_name, FLAGS.profile_duration, input_name)
          for i in range(FLAGS.parallel_num)
      ]
      for t in threads:
        t.start()
      latencies = sorted(l for t in threads for l in t.get_result())
      if not latencies:
        logging.error('profile: no request succeeded')
        return 1
      avg = sum(latencies) / len(latencies)
      p99 = latencies[round((len(latencies) - 1) * 0.99)]
      qps = len(latencies) / FLAGS.profile_duration
      summary = (f'profile: {len(latencies)} requests, avg {avg:.3f} ms, p99 {p99:.3f} ms, '
                 f'qps {qps:.1f}')
      logging.info(summary)
      print(summary)
    else:
      request = predict_pb2.PredictRequest(
          model_spec=gen_model_spec(model_name, signature_name=FLAGS.signature_name))
      if FLAGS.input_type == 'instance':
        # Without an input file, random Instances are sent (upstream required VALID_SLOTS and
        # a data generator even for that).
        request.inputs['instances'].CopyFrom(
            get_instance_proto(FLAGS.input_file, FLAGS.batch_size))
      elif FLAGS.input_type == 'example_batch':
        input_file = FLAGS.input_file or uuid.uuid4().hex
        request.inputs['example_batch'].CopyFrom(get_example_batch_proto_v2(input_file))
      else:
        request.inputs['instances'].CopyFrom(
            get_example_batch_to_instance(FLAGS.input_file, FLAGS.file_type))
      response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
          request, timeout=_PREDICT_TIMEOUT)
      _print_predict_response(response)
  except grpc.RpcError as e:
    print(f'tfs_client: {FLAGS.cmd_type} on {targets[0]} failed: {e.code().name}: {e.details()}',
          file=sys.stderr)
    return 2
  return 0


def cli():
  utils.run_cli(main, __name__, client.__name__, 'monolith.agent_service.utils')


if __name__ == '__main__':
  cli()
