"""Assembles a wheel (PEP 427) from a manifest of `<path in wheel>\t<file>` lines.

Output is byte-for-byte reproducible: entries sorted, timestamps fixed, permissions normalised."""
import argparse
import base64
import hashlib
import re
import zipfile

_EPOCH = (1980, 1, 1, 0, 0, 0)
_EXCLUDED = re.compile(r"(_test\.py$|/testdata/|/__pycache__/|\.pyc$|\.runfiles/)")


def _record_hash(data: bytes) -> str:
  digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
  return "sha256=" + digest.decode()


def _requirements(path):
  pins = []
  with open(path) as f:
    for line in f:
      line = line.split("#", 1)[0].strip()
      if line:
        if "==" not in line:
          raise ValueError("{}: requirement {!r} is not pinned with ==".format(path, line))
        pins.append(line)
  return pins


def _collect(manifest, packages):
  files = {}
  with open(manifest) as f:
    for line in f:
      dest, src = line.rstrip("\n").split("\t")
      if dest.split("/", 1)[0] in packages and not _EXCLUDED.search(dest):
        files[dest] = src
  # Bazel runfiles get implicit __init__.py files; an installed package needs real ones.
  for dest in list(files):
    if dest.endswith(".py"):
      parts = dest.split("/")[:-1]
      for i in range(1, len(parts) + 1):
        files.setdefault("/".join(parts[:i] + ["__init__.py"]), None)
  return files


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--output", required=True)
  parser.add_argument("--manifest", required=True)
  parser.add_argument("--distribution", required=True)
  parser.add_argument("--version", required=True)
  parser.add_argument("--tag", required=True, help="python-abi-platform")
  parser.add_argument("--summary", default="")
  parser.add_argument("--requirements", required=True)
  parser.add_argument("--package", action="append", default=[])
  parser.add_argument("--console_script", action="append", default=[])
  args = parser.parse_args()

  dist_info = "{}-{}.dist-info".format(args.distribution, args.version)
  entries = {}
  for dest, src in sorted(_collect(args.manifest, set(args.package)).items()):
    if src is None:
      entries[dest] = (b"", 0o644)
    else:
      with open(src, "rb") as f:
        entries[dest] = (f.read(), 0o755 if dest.endswith(".so") else 0o644)

  metadata = ["Metadata-Version: 2.1", "Name: " + args.distribution, "Version: " + args.version,
              "Summary: " + args.summary, "Requires-Python: >=3.9"]
  metadata += ["Requires-Dist: " + pin for pin in _requirements(args.requirements)]
  entries[dist_info + "/METADATA"] = ("\n".join(metadata) + "\n\n").encode(), 0o644
  entries[dist_info + "/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: monolith-build-wheel\n"
                                   "Root-Is-Purelib: false\nTag: {}\n\n".format(args.tag)).encode(), 0o644
  if args.console_script:
    scripts = "".join(line.replace("=", " = ", 1) + "\n" for line in sorted(args.console_script))
    entries[dist_info + "/entry_points.txt"] = ("[console_scripts]\n" + scripts).encode(), 0o644
  entries[dist_info + "/top_level.txt"] = "".join(p + "\n" for p in sorted(args.package)).encode(), 0o644

  record = "".join("{},{},{}\n".format(name, _record_hash(data), len(data))
                   for name, (data, _) in sorted(entries.items()))
  entries[dist_info + "/RECORD"] = (record + dist_info + "/RECORD,,\n").encode(), 0o644

  with zipfile.ZipFile(args.output, "w", zipfile.ZIP_DEFLATED) as wheel:
    # RECORD goes last, as installers expect; everything else in sorted order.
    for name in sorted(entries, key=lambda n: (n.endswith("/RECORD"), n)):
      data, mode = entries[name]
      info = zipfile.ZipInfo(name, date_time=_EPOCH)
      info.compress_type = zipfile.ZIP_DEFLATED
      info.external_attr = (0o100000 | mode) << 16
      wheel.writestr(info, data)


if __name__ == "__main__":
  main()
