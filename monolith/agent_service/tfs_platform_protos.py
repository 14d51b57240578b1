"""TF-Serving platform-config messages missing from the `tensorflow-serving-api` wheel.

The wheel ships `PlatformConfigMap` but not `SessionBundleConfig`, `BatchingParameters` or
`SavedModelBundleSourceAdapterConfig`, which the agent packs into it. Upstream builds them from a
patched TF Serving 2.4.0 (with `BatchingParameters.support_diff_dim_size_inputs = 10`). They are
registered here from descriptors with the upstream file names, packages and field numbers, so the
text/binary encodings (and the Any type URL) match a real TF Serving config. Only the fields the
agent reads or writes are declared; unknown fields in parsed input are preserved by protobuf.
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import wrappers_pb2  # noqa: F401  registers google/protobuf/wrappers.proto
from tensorflow.core.protobuf import config_pb2  # noqa: F401  registers tensorflow.ConfigProto

_F = descriptor_pb2.FieldDescriptorProto

_SESSION_BUNDLE_FILE = 'tensorflow_serving/servables/tensorflow/session_bundle_config.proto'
_ADAPTER_FILE = 'tensorflow_serving/servables/tensorflow/saved_model_bundle_source_adapter.proto'


def _field(msg, name, number, ftype, type_name=None, label=_F.LABEL_OPTIONAL):
  f = msg.field.add(name=name, number=number, type=ftype, label=label)
  if type_name:
    f.type_name = type_name


def _session_bundle_file() -> descriptor_pb2.FileDescriptorProto:
  fdp = descriptor_pb2.FileDescriptorProto(name=_SESSION_BUNDLE_FILE, package='tensorflow.serving',
                                           syntax='proto3')
  fdp.dependency.extend(['google/protobuf/wrappers.proto', 'tensorflow/core/protobuf/config.proto'])
  sbc = fdp.message_type.add(name='SessionBundleConfig')
  _field(sbc, 'session_target', 1, _F.TYPE_STRING)
  _field(sbc, 'session_config', 2, _F.TYPE_MESSAGE, '.tensorflow.ConfigProto')
  _field(sbc, 'batching_parameters', 3, _F.TYPE_MESSAGE, '.tensorflow.serving.BatchingParameters')
  _field(sbc, 'saved_model_tags', 6, _F.TYPE_STRING, label=_F.LABEL_REPEATED)
  _field(sbc, 'enable_model_warmup', 779, _F.TYPE_BOOL)
  _field(sbc, 'remove_unused_fields_from_bundle_metagraph', 782, _F.TYPE_BOOL)
  bp = fdp.message_type.add(name='BatchingParameters')
  for name, number in (('max_batch_size', 1), ('batch_timeout_micros', 2),
                       ('max_enqueued_batches', 3), ('num_batch_threads', 4)):
    _field(bp, name, number, _F.TYPE_MESSAGE, '.google.protobuf.Int64Value')
  _field(bp, 'support_diff_dim_size_inputs', 10, _F.TYPE_BOOL)  # Monolith's TF Serving patch
  return fdp


def _adapter_file() -> descriptor_pb2.FileDescriptorProto:
  fdp = descriptor_pb2.FileDescriptorProto(name=_ADAPTER_FILE, package='tensorflow.serving',
                                           syntax='proto3')
  fdp.dependency.append(_SESSION_BUNDLE_FILE)
  adapter = fdp.message_type.add(name='SavedModelBundleSourceAdapterConfig')
  _field(adapter, 'legacy_config', 1000, _F.TYPE_MESSAGE, '.tensorflow.serving.SessionBundleConfig')
  return fdp


def _register():
  pool = descriptor_pool.Default()
  for fdp in (_session_bundle_file(), _adapter_file()):
    try:
      pool.FindFileByName(fdp.name)
    except KeyError:
      pool.AddSerializedFile(fdp.SerializeToString())
  return tuple(
      message_factory.GetMessageClass(pool.FindMessageTypeByName('tensorflow.serving.' + name))
      for name in ('SessionBundleConfig', 'BatchingParameters',
                   'SavedModelBundleSourceAdapterConfig'))


SessionBundleConfig, BatchingParameters, SavedModelBundleSourceAdapterConfig = _register()
