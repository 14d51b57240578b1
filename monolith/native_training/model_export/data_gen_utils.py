"""Random Example / Instance / ExampleBatch generators for serving tests and warmup.

`gen_random_data_file` writes records framed exactly as the Monolith data readers
(`tfs_client.read_header` / `read_data`) expect:
`<header><8-byte little-endian length><serialized proto>`.
"""

import dataclasses
import random
import string
import struct
import time
from typing import Any, List, Optional

from absl import logging
from google.protobuf import descriptor
import numpy as np
import tensorflow as tf

from idl.matrix.proto import example_pb2
from idl.matrix.proto import line_id_pb2
from idl.matrix.proto import proto_parser_pb2
from monolith.native_training.data.feature_list import FeatureList
from monolith.native_training.data.feature_list import get_feature_name_and_slot

MASK_V1 = (1 << 54) - 1
MAX_SLOT_V1 = 1023
MASK_V2 = (1 << 48) - 1
MAX_SLOT_V2 = 65535

# Slots that every generated row carries (user id / item id in Monolith models).
_ALWAYS_PRESENT_SLOTS = (1, 200)
# Sequence-like features: empty in most rows.
_SEQUENCE_NAME_MARKERS = ('_recent', '_cp')
_SEQUENCE_METHODS = ('Combine', 'VectorTopString')

_COLLECTION_FILLED_FIELDS = ('model_name', 'fidv1_features', 'fidv2_features',
                             'sparse_features', 'dense_features',
                             'dense_feature_shapes', 'dense_feature_types',
                             'extra_features', 'extra_feature_shapes',
                             'feature_list', 'variant_type')


@dataclasses.dataclass
class ParserArgs:
  model_name: str = 'entry'
  fidv1_features: Optional[List[int]] = None
  fidv2_features: Optional[List[str]] = None
  sparse_features: Optional[List[str]] = None
  dense_features: Optional[List[str]] = None
  dense_feature_shapes: Optional[List[int]] = None
  dense_feature_types: Optional[List[Any]] = None
  extra_features: Optional[List[str]] = None
  extra_feature_shapes: Optional[List[int]] = None
  feature_list: Optional[FeatureList] = None
  batch_size: int = 64
  max_records: int = 1000
  signature_name: Optional[List[str]] = None
  variant_type: Optional[str] = None
  warmup_file: Optional[str] = None
  drop_rate: float = 0.5

  def __post_init__(self):
    # Unset fields come from what the model graph recorded in its collections.
    for name in _COLLECTION_FILLED_FIELDS:
      if not getattr(self, name):
        collection = tf.compat.v1.get_collection(name)
        setattr(self, name, collection[-1] if collection else None)
    if not self.feature_list:
      try:
        self.feature_list = FeatureList.parse()
      except Exception:  # pylint: disable=broad-except
        logging.info('cannot get feature_list, pls check!')
    if not self.signature_name:
      self.signature_name = list(
          set(tf.compat.v1.get_collection('signature_name')))
    elif isinstance(self.signature_name, str):
      self.signature_name = [self.signature_name]
    self.signature_name = list(set(self.signature_name) | {'serving_default'})


def gen_fids_v1(slot: int, size: int = 1) -> List[int]:
  if not 0 < slot < MAX_SLOT_V1:
    logging.info('slot %s is out of the fid v1 range [1, %s)', slot,
                 MAX_SLOT_V1)
    return []
  return [(slot << 54) | (random.getrandbits(54) & MASK_V1)
          for _ in range(size)]


def gen_fids_v2(slot: int, size: int = 1) -> List[int]:
  assert 0 < slot < MAX_SLOT_V2, 'slot {} is out of the fid v2 range'.format(
      slot)
  return [(slot << 48) | (random.getrandbits(48) & MASK_V2)
          for _ in range(size)]


def _java_string_hash(text: str) -> int:
  """Java `String.hashCode` (over UTF-16 code units) as uint32."""
  units = struct.unpack('<{}H'.format(len(text.encode('utf-16-le')) // 2),
                        text.encode('utf-16-le'))
  value = 0
  for unit in units:
    value = (31 * value + unit) & 0xFFFFFFFF
  return value


def lg_header(source: Optional[str]) -> bytes:
  """8-byte lagrangex header: byte 0 = 0, bytes 1-3 = low 3 bytes of hash."""
  if not source:
    return bytes(8)
  return struct.pack('<Q', (_java_string_hash(source) & 0xFFFFFF) << 8)


def sort_header(kafka_dump: bool = False,
                kafka_dump_prefix: bool = False) -> bytes:
  """Header carrying an empty sort id, optionally with kafka dump fields."""
  if kafka_dump and kafka_dump_prefix:
    raise Exception('kafka_dump and kafka_dump_prefix together is not support')
  if kafka_dump_prefix:
    return bytes(24)  # prefix size 0 + its u64, then the sort id length 0
  if kafka_dump:
    return bytes(16)  # sort id length 0 + the kafka dump u64
  return bytes(8)  # sort id length 0


def _resolve_sparse(args: ParserArgs, name: str):
  """Returns (slot, method) of a sparse feature."""
  feature = args.feature_list.get(name) if args.feature_list else None
  if feature is not None:
    return feature.slot, feature.method
  return get_feature_name_and_slot(name)[1], None


def _num_fids(args: ParserArgs, name: str, slot: int, method) -> int:
  if (any(marker in name for marker in _SEQUENCE_NAME_MARKERS) or
      method in _SEQUENCE_METHODS):
    if args.drop_rate > 0 and random.random() > args.drop_rate:
      return random.randint(0, 2)
    return 0
  if slot in _ALWAYS_PRESENT_SLOTS:
    return 1
  return 1 if random.random() < 1 - args.drop_rate else 0


def _dense_values(args: ParserArgs):
  """Yields (name, shape, is_int, values) for each dense feature."""
  names = args.dense_features or []
  shapes = args.dense_feature_shapes or [1] * len(names)
  types = args.dense_feature_types or [tf.float32] * len(names)
  for name, shape, dtype in zip(names, shapes, types):
    is_int = tf.as_dtype(dtype).is_integer
    if is_int:
      values = [random.randint(1 << 32, (1 << 62)) for _ in range(shape)]
    else:
      values = np.random.uniform(size=shape).astype(np.float32).tolist()
    yield name, shape, is_int, values


def _random_field_values(field: descriptor.FieldDescriptor, count: int):
  fd = descriptor.FieldDescriptor
  if field.type == fd.TYPE_BOOL:
    return [random.random() < 0.5 for _ in range(count)]
  if field.type in (fd.TYPE_FLOAT, fd.TYPE_DOUBLE):
    return [random.random() for _ in range(count)]
  if field.type in (fd.TYPE_STRING, fd.TYPE_BYTES):
    texts = [''.join(random.choices(string.ascii_lowercase, k=8))
             for _ in range(count)]
    return texts if field.type == fd.TYPE_STRING else [
        t.encode() for t in texts]
  if field.type in (fd.TYPE_INT32, fd.TYPE_SINT32, fd.TYPE_SFIXED32):
    return [random.randint(0, (1 << 31) - 1) for _ in range(count)]
  if field.type in (fd.TYPE_UINT32, fd.TYPE_FIXED32):
    return [random.randint(0, (1 << 32) - 1) for _ in range(count)]
  return [random.randint(0, (1 << 62) - 1) for _ in range(count)]


def fill_line_id(line_id: line_id_pb2.LineId,
                 features: Optional[List[str]],
                 shapes: Optional[List[int]] = None,
                 actions: Optional[List[int]] = None) -> line_id_pb2.LineId:
  """Fills the requested LineId fields with plausible random values."""
  features = features or []
  shapes = shapes or [1] * len(features)
  fields = line_id_pb2.LineId.DESCRIPTOR.fields_by_name
  for name, shape in zip(features, shapes):
    if name == 'uid':
      line_id.uid = (1 << 48) | random.getrandbits(48)
    elif name == 'item_id':
      line_id.item_id = (200 << 48) | random.getrandbits(48)
    elif name == 'req_time':
      line_id.req_time = int(time.time())
    elif name == 'sample_rate':
      line_id.sample_rate = 1.0
    elif name == 'actions':
      line_id.actions.extend(
          random.choice(actions or list(range(11))) for _ in range(shape))
    elif name not in fields:
      # Upstream assigns e.g. `stay_time`, which the public LineId lacks.
      raise AttributeError('LineId has no field {!r}'.format(name))
    else:
      field = fields[name]
      values = _random_field_values(field, max(shape, 1))
      if field.is_repeated:
        getattr(line_id, name).extend(values)
      else:
        setattr(line_id, name, values[0])
  return line_id


def gen_example(args: ParserArgs,
                index: int = 0,
                actions: Optional[List[int]] = None) -> example_pb2.Example:
  example = example_pb2.Example()
  for name in args.sparse_features or []:
    slot, method = _resolve_sparse(args, name)
    named = example.named_feature.add(name=name)
    if slot is not None:
      named.id = slot
    fids = gen_fids_v2(slot, _num_fids(args, name, slot, method))
    named.feature.fid_v2_list.value.extend(fids)
  label = None
  for name, _, is_int, values in _dense_values(args):
    if name == 'label':
      label = values
      continue
    feature = example.named_feature.add(name=name).feature
    if is_int:
      feature.int64_list.value.extend(values)
    else:
      feature.float_list.value.extend(values)
  example.label.extend(label if label is not None else [float(index % 2)])
  fill_line_id(example.line_id, args.extra_features, args.extra_feature_shapes,
               actions)
  return example


def gen_instance(args: ParserArgs,
                 index: int = 0,
                 actions: Optional[List[int]] = None
                ) -> proto_parser_pb2.Instance:
  instance = proto_parser_pb2.Instance()
  for slot in args.fidv1_features or []:
    size = 1 if slot in _ALWAYS_PRESENT_SLOTS else random.randint(0, 3)
    instance.fid.extend(gen_fids_v1(slot, size))
  for name in args.fidv2_features or args.sparse_features or []:
    slot, _ = _resolve_sparse(args, name)
    if any(marker in name for marker in _SEQUENCE_NAME_MARKERS + ('-',)):
      size = 0
      if args.drop_rate > 0 and random.random() > args.drop_rate:
        size = random.randint(0, 2)
    else:
      size = 1
    instance.feature.add(name=name, fid=gen_fids_v2(slot, size))
  label = None
  for name, _, is_int, values in _dense_values(args):
    if name == 'label':
      label = values
      continue
    feature = instance.feature.add(name=name)
    if is_int:
      feature.int64_value.extend(values)
    else:
      feature.float_value.extend(values)
  instance.label.extend(label if label is not None else [float(index % 2)])
  fill_line_id(instance.line_id, args.extra_features,
               args.extra_feature_shapes, actions)
  return instance


def gen_example_batch(args: ParserArgs,
                      actions: Optional[List[int]] = None
                     ) -> example_pb2.ExampleBatch:
  batch_size = args.batch_size
  batch = example_pb2.ExampleBatch(batch_size=batch_size)
  for name in args.sparse_features or []:
    slot, method = _resolve_sparse(args, name)
    named = batch.named_feature_list.add(name=name)
    if slot is not None:
      named.id = slot
    for _ in range(batch_size):
      fids = gen_fids_v2(slot, _num_fids(args, name, slot, method))
      named.feature.add().fid_v2_list.value.extend(fids)
  dense_lists = {
      name: batch.named_feature_list.add(name=name)
      for name in args.dense_features or []
      if name != 'label'
  }
  labels = []
  for _ in range(batch_size):
    for name, _, is_int, values in _dense_values(args):
      if name == 'label':
        labels.append(values)
        continue
      feature = dense_lists[name].feature.add()
      if is_int:
        feature.int64_list.value.extend(values)
      else:
        feature.float_list.value.extend(values)
  line_ids = batch.named_feature_list.add(name='__LINE_ID__')
  for _ in range(batch_size):
    line_id = fill_line_id(line_id_pb2.LineId(), args.extra_features,
                           args.extra_feature_shapes, actions)
    line_ids.feature.add().bytes_list.value.append(line_id.SerializeToString())
  label_list = batch.named_feature_list.add(name='__LABEL__')
  for index in range(batch_size):
    values = labels[index] if labels else [float(index % 2)]
    label_list.feature.add().float_list.value.extend(values)
  return batch


def gen_random_data_file(data_file_name: str,
                         args: ParserArgs,
                         num_batch: int = 128,
                         source: Optional[str] = None,
                         sort_id: bool = True,
                         kafka_dump: bool = False,
                         kafka_dump_prefix: bool = False,
                         actions: Optional[List[int]] = None):
  """Writes `num_batch` groups of random records, framed for the data readers."""
  if sort_id:
    header = sort_header(kafka_dump, kafka_dump_prefix)
  else:
    header = lg_header(source)
  with open(data_file_name, 'wb') as stream:

    def write(message):
      payload = message.SerializeToString()
      stream.write(header)
      stream.write(struct.pack('<Q', len(payload)))
      stream.write(payload)

    for _ in range(num_batch):
      if args.variant_type == 'example':
        for index in range(args.batch_size):
          write(gen_example(args, index, actions))
      elif args.variant_type == 'instance':
        for index in range(args.batch_size):
          write(gen_instance(args, index, actions))
      else:
        write(gen_example_batch(args, actions))
