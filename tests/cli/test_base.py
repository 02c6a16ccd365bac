import json
import subprocess
import sys

import pytest

from llmft import exit_codes
from llmft.bases.gguf import MANIFEST


def _llmft(*args):
    return subprocess.run([sys.executable, "-m", "llmft.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_base_import_writes_the_same_folder_as_the_named_import(tmp_path, smollm2_gguf, smollm2_dir):
    done = _llmft("model", "import", smollm2_gguf, "--out", tmp_path / "smol")
    assert done.returncode == exit_codes.OK, done.stderr
    assert done.stdout.strip() == str(tmp_path / "smol")
    files = lambda folder: json.loads((folder / MANIFEST).read_text())["files"]  # noqa: E731
    assert files(tmp_path / "smol") == files(smollm2_dir)  # same GGUF, byte for byte the same files


@pytest.mark.slow
def test_base_import_of_a_corrupt_file_exits_2_with_one_line(tmp_path):
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + bytes(64))
    done = _llmft("base", "import", tmp_path / "bad.gguf", "--out", tmp_path / "out")
    assert done.returncode == exit_codes.USAGE
    assert done.stderr.startswith(f"llmft: {tmp_path / 'bad.gguf'}: transformers cannot read this GGUF")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
