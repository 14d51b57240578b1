"""Wire compatibility of the matrix IDL with existing Monolith data: round trips, and byte-exact
encodings computed by hand from the upstream field numbers (a wrong number or packing fails)."""
import unittest

from idl.matrix.proto import example_pb2
from idl.matrix.proto import feature_pb2
from idl.matrix.proto import line_id_pb2
from idl.matrix.proto import proto_parser_pb2


class ProtoParserWireTest(unittest.TestCase):

  def test_instance_packed_v1_fid(self):
    # field 1, wire type 2 (packed fixed64): 0x0a, length 8, little-endian (1 << 54) | 5.
    inst = proto_parser_pb2.Instance(fid=[(1 << 54) | 5])
    self.assertEqual(inst.SerializeToString(), bytes.fromhex("0a08" "0500000000004000"))

  def test_instance_round_trip(self):
    inst = proto_parser_pb2.Instance(fid=[1, 2, 3], label=[1.0], instance_weight=0.5,
                                     data_source_key=9)
    inst.line_id.uid = 42
    inst.feature.add(name="fc_a", fid=[7, 8])
    inst.label_tag.add(key=1, val=2.0)
    parsed = proto_parser_pb2.Instance.FromString(inst.SerializeToString())
    self.assertEqual(parsed, inst)
    self.assertEqual(list(parsed.feature[0].fid), [7, 8])
    self.assertEqual(parsed.line_id.uid, 42)

  def test_instance_weight_has_no_default(self):
    self.assertEqual(proto_parser_pb2.Instance().instance_weight, 0.0)


class LineIdWireTest(unittest.TestCase):

  def test_hand_encoded(self):
    line_id = line_id_pb2.LineId(uid=7, actions=[1, 2], special_strategies=[3, 4], rank=1,
                                 data_source_name="x")
    expected = bytes.fromhex(
        "11" "0700000000000000"  # uid: field 2, fixed64
        "32" "02" "01" "02"  # actions: field 6, packed
        "b802" "03" "b802" "04"  # special_strategies: field 39, NOT packed
        "8809" "01"  # rank: field 145, varint
        "da0e" "01" "78")  # data_source_name: field 235, "x"
    self.assertEqual(line_id.SerializeToString(), expected)
    self.assertEqual(line_id_pb2.LineId.FromString(expected), line_id)

  def test_sample_rate_defaults_to_one(self):
    self.assertEqual(line_id_pb2.LineId().sample_rate, 1.0)


class FeatureWireTest(unittest.TestCase):

  def test_packed_fids(self):
    feature = feature_pb2.Feature(name="f", fid=[1])
    # name: 0a 01 66; fid: field 2 packed -> 12 08 + 8 bytes.
    self.assertEqual(feature.SerializeToString(),
                     bytes.fromhex("0a0166" "1208" "0100000000000000"))

  def test_sequence_round_trip(self):
    feature = feature_pb2.Feature(name="seq")
    feature.fid_list.add(value=[1, 2])
    feature.fid_list.add(value=[3])
    self.assertEqual(feature_pb2.Feature.FromString(feature.SerializeToString()), feature)


class ExampleWireTest(unittest.TestCase):

  def test_fid_v2_feature(self):
    feature = example_pb2.Feature()
    feature.fid_v2_list.value.append((2 << 48) | 9)
    self.assertEqual(feature.SerializeToString(),
                     bytes.fromhex("120a" "0a08" "0900000000000200"))

  def test_example_batch_hand_encoded(self):
    batch = example_pb2.ExampleBatch(batch_size=2, data_source_key=5)
    batch.named_feature_list.add(name="a", id=1, type=example_pb2.SHARED)
    # named_feature_list{name "a" (1), type SHARED (3), id 1 (4)}, batch_size (3),
    # data_source_key (100 -> tag a0 06).
    self.assertEqual(batch.SerializeToString(),
                     bytes.fromhex("0a07" "0a0161" "1801" "2001" "1802" "a00605"))

  def test_example_round_trip(self):
    example = example_pb2.Example(label=[1.0, 0.0], instance_weight=1.0, data_source_key=3)
    named = example.named_feature.add(name="fc_user", id=1)
    named.feature.fid_v2_lists.list.add(value=[(5 << 48) | 1, (5 << 48) | 2])
    example.line_id.req_time = 1600000000
    parsed = example_pb2.Example.FromString(example.SerializeToString())
    self.assertEqual(parsed, example)
    self.assertEqual(parsed.named_feature[0].feature.WhichOneof("type"), "fid_v2_lists")

  def test_feature_configs_round_trip(self):
    configs = example_pb2.FeatureConfigs()
    configs.feature_configs["f"].CopyFrom(
        example_pb2.FeatureConfig(table="t", pooling_type=example_pb2.FIRSTN, slice_dims=[4, 8],
                                  max_sequence_length=10))
    out = configs.out_configs["bias"]
    out.out_type = example_pb2.ADDN
    out.slice_configs.add(feature_name="f", start=0, end=4, pooling_type=example_pb2.SUM)
    out.shape.add(dims=[-1, 4])
    self.assertEqual(example_pb2.FeatureConfigs.FromString(configs.SerializeToString()), configs)
    self.assertEqual(example_pb2.PoolingType.Value("FIRSTN"), 3)
    self.assertEqual(example_pb2.OutType.Value("NONE"), 3)


if __name__ == "__main__":
  unittest.main()
