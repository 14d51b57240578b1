import os
import struct
import threading

import tensorflow as tf

from monolith.native_training import file_ops


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _masked_crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _tfrecord(payload: bytes) -> bytes:
  length = struct.pack("<Q", len(payload))
  return (length + struct.pack("<I", _masked_crc32c(length)) + payload +
          struct.pack("<I", _masked_crc32c(payload)))


class FileOpsTest(tf.test.TestCase):

  def test_basic(self):
    filename = os.path.join(self.get_temp_dir(), "test_basic", "test_name")

    @tf.function
    def write():
      f = file_ops.WritableFile(filename)
      for _ in tf.range(1000):
        f.append("1234")
      f.close()

    write()
    self.assertEqual(_read(filename), b"1234" * 1000)

  def test_hook(self):
    filename = os.path.join(self.get_temp_dir(), "test_hook", "test_name")
    with tf.Graph().as_default():
      f = file_ops.WritableFile(filename)
      append = f.append("1234")
      with tf.compat.v1.train.MonitoredSession(
          hooks=[file_ops.FileCloseHook([f])]) as session:
        session.run(append)
    self.assertEqual(_read(filename), b"1234")

  def test_hook_requires_list(self):
    with tf.Graph().as_default():
      f = file_ops.WritableFile(os.path.join(self.get_temp_dir(), "x"))
      with self.assertRaises(AssertionError):
        file_ops.FileCloseHook((f,))

  def test_bad_path_names_the_path(self):
    blocker = os.path.join(self.get_temp_dir(), "not_a_dir")
    with open(blocker, "w") as f:
      f.write("x")
    bad = os.path.join(blocker, "sub", "file")
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile(bad)
      with self.assertRaisesRegex(tf.errors.OpError, "not_a_dir/sub/file"):
        session.run(f.append("x"))

  def test_unknown_scheme_names_the_path(self):
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile("nosuchfs://bucket/file")
      with self.assertRaisesRegex(tf.errors.OpError, "nosuchfs://bucket/file"):
        session.run(f.append("x"))

  def test_append_after_close_fails_cleanly(self):
    filename = os.path.join(self.get_temp_dir(), "closed")
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile(filename)
      session.run(f.append("a"))
      session.run(f.close())
      with self.assertRaisesRegex(tf.errors.FailedPreconditionError, "closed"):
        session.run(f.append("b"))
      with self.assertRaisesRegex(tf.errors.FailedPreconditionError, "closed"):
        session.run(f.close())
    self.assertEqual(_read(filename), b"a")

  def test_concurrent_appends_do_not_interleave(self):
    filename = os.path.join(self.get_temp_dir(), "concurrent")
    threads, appends_per_thread, chunk = 4, 50, 4096
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile(filename)
      content = tf.compat.v1.placeholder(tf.string, [])
      append = f.append(content)
      session.run(f.append(""))  # creates the file before the threads race

      def worker(index):
        payload = bytes([ord("a") + index]) * chunk
        for _ in range(appends_per_thread):
          session.run(append, {content: payload})

      workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
      for w in workers:
        w.start()
      for w in workers:
        w.join()
      session.run(f.close())
    data = _read(filename)
    self.assertEqual(len(data), threads * appends_per_thread * chunk)
    blocks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for block in blocks:
      self.assertEqual(block, block[:1] * chunk)  # each append landed whole
    self.assertEqual(sorted(set(b[:1] for b in blocks)), [b"a", b"b", b"c", b"d"])

  def test_entry_dump_format(self):
    filename = os.path.join(self.get_temp_dir(), "dump")
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile(filename)
      session.run(f.append("H"))
      session.run(
          f.append_entry_dump(
              tf.constant([7, -1], tf.int64), tf.constant([0.5, 1.0]),
              tf.constant([[1.0, 2.0], [3.0, -4.0]])))
      session.run(f.close())
    record1 = (b"\x09" + struct.pack("<q", 7) + b"".join(
        b"\x15" + struct.pack("<f", v) for v in (0.5, 1.0, 2.0)))
    record2 = (b"\x09" + struct.pack("<q", -1) + b"".join(
        b"\x15" + struct.pack("<f", v) for v in (1.0, 3.0, -4.0)))
    self.assertEqual(_read(filename), b"H" + _tfrecord(record1) + _tfrecord(record2))
    # TF's own reader accepts the framing.
    records = list(tf.compat.v1.io.tf_record_iterator(self._strip_header(filename)))
    self.assertEqual(records, [record1, record2])

  def _strip_header(self, filename):
    stripped = filename + ".records"
    with open(stripped, "wb") as f:
      f.write(_read(filename)[1:])
    return stripped

  def test_entry_dump_bad_shapes(self):
    with tf.Graph().as_default(), self.session() as session:
      f = file_ops.WritableFile(os.path.join(self.get_temp_dir(), "bad_dump"))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "must not be empty"):
        session.run(f.append_entry_dump(tf.zeros([0], tf.int64), tf.zeros([0]), tf.zeros([0])))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "not a multiple"):
        session.run(f.append_entry_dump(tf.constant([1, 2], tf.int64), tf.zeros([2]),
                                        tf.zeros([3])))
      with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "bias has 1 values"):
        session.run(f.append_entry_dump(tf.constant([1, 2], tf.int64), tf.zeros([1]),
                                        tf.zeros([4])))


if __name__ == "__main__":
  tf.test.main()
