import unittest

from monolith.native_training.metric import cli


class CliTest(unittest.TestCase):

  def test_every_method_is_a_no_op(self):
    client = cli.get_cli("prefix", "ignored", flag=True)
    self.assertIsInstance(client, cli.Client)
    self.assertIsNone(client.emit_counter("c", 1, {"a": "b"}))
    self.assertIsNone(client.emit_timer("t", 0.5, tags={}))
    self.assertIsNone(client.emit_store("s", 3))
    self.assertIsNone(client.flush())
    self.assertIsNone(client.any_name_at_all())

  def test_new_client_per_call(self):
    self.assertIsNot(cli.get_cli(), cli.get_cli())


if __name__ == "__main__":
  unittest.main()
