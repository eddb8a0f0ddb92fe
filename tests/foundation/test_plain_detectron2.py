"""detectron2 on its own: the installer's source fixes (Pillow / numpy / setuptools names), a plain
``DefaultPredictor`` import without the toolkit, and plain-text ``log.txt`` files."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import shared  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def _patcher():
    import importlib.util

    spec = importlib.util.spec_from_file_location("patch_detectron2_source", REPO / ".ci" /
                                                  "patch_detectron2_source.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_fixes_rewrite_the_removed_names_once(tmp_path):
    patcher = _patcher()
    package = tmp_path / "detectron2"
    (package / "model_zoo").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "t.py").write_text(
        "def f(interp=Image.LINEAR, b=Image.CUBIC, c=Image.ANTIALIAS, d=Image.BILINEAR):\n"
        "    return np.zeros(3).astype(np.bool), np.int8, np.float32, np.float_, dtype=np.float, np.str\n"
        "shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x)\n")
    (package / "model_zoo" / "model_zoo.py").write_text("import os\nimport pkg_resources\nimport torch\n")
    changed = patcher.patch_tree(package)
    assert changed == {"t.py": 7, "model_zoo/model_zoo.py": 1}
    assert (package / "t.py").read_text() == (
        "def f(interp=Image.BILINEAR, b=Image.BICUBIC, c=Image.LANCZOS, d=Image.BILINEAR):\n"
        "    return np.zeros(3).astype(bool), np.int8, np.float32, np.float_, dtype=float, str\n"
        'shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")\n')
    zoo = (package / "model_zoo" / "model_zoo.py").read_text()
    assert patcher.patch_tree(package) == {}  # idempotent
    # the rewritten import works without pkg_resources and gives the package's file path
    namespace = {}
    exec(compile(zoo.replace("import torch\n", ""), "model_zoo.py", "exec"),
         {"__builtins__": __builtins__, "__import__": _no_pkg_resources_import}, namespace)
    path = namespace["pkg_resources"].resource_filename("shared", "registry.py")
    assert os.path.samefile(path, REPO / "shared" / "registry.py")


def _no_pkg_resources_import(name, *args, **kwargs):
    if name == "pkg_resources":
        raise ImportError("no pkg_resources")
    return __import__(name, *args, **kwargs)


def test_installed_detectron2_imports_without_the_toolkit():
    """``from detectron2.engine import DefaultPredictor`` and the model zoo in a fresh interpreter that never
    imports ``shared`` (the installer fixed detectron2's own source)."""
    code = ("import sys\nfrom detectron2.engine import DefaultPredictor\nfrom detectron2 import model_zoo\n"
            "import detectron2.data.transforms as T\n"
            "path = model_zoo.get_config_file('COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml')\n"
            "assert path.endswith('.yaml')\n"
            "assert 'shared' not in sys.modules\nprint('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_log_txt_is_plain_text_while_the_message_is_coloured(tmp_path):
    from detectron2.utils.logger import setup_logger
    from termcolor import colored

    logger = setup_logger(output=str(tmp_path), name="plain_log_test")
    logger.info("config:\n" + colored("MODEL: x", "cyan") + " \x1b[38;5;245m# comment\x1b[39m")
    for handler in logger.handlers:
        handler.flush()
    text = (tmp_path / "log.txt").read_text()
    assert "\x1b" not in text and "config:\nMODEL: x # comment" in text


@pytest.mark.parametrize("module", ["detectron2.utils.logger", "fastreid.utils.logger"])
def test_log_stream_is_patched_once_per_file(module, tmp_path):
    import importlib

    logger_module = importlib.import_module(module)
    a = logger_module._cached_log_stream(str(tmp_path / "a.txt"))
    assert a is logger_module._cached_log_stream(str(tmp_path / "a.txt"))
    a.write("\x1b[32mgreen\x1b[0m\n")
    a.flush()
    assert (tmp_path / "a.txt").read_text() == "green\n"
