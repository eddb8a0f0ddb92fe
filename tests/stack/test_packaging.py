"""setup.cfg declares what requirements.txt pins: `pip install .` is meaningful on its own, test tools are
in the `dev` extra, and every tested pin satisfies the declared range."""
import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "pytest-timeout", "cython", "ruff"}


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    install = [Requirement(r) for r in parser["options"]["install_requires"].split("\n") if r.strip()]
    extras = {name: [Requirement(r) for r in value.split("\n") if r.strip() and not r.strip().startswith("#")]
              for name, value in parser["options.extras_require"].items()}
    return install, extras


def _pins():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"requirements.txt: {line!r} is not a pin"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_every_pin_is_declared_and_satisfies_its_range():
    install, extras = _setup_cfg()
    declared = {canonicalize_name(r.name): r for r in install}
    dev = {canonicalize_name(r.name): r for r in extras["dev"]}
    assert set(dev) == DEV_TOOLS and not DEV_TOOLS & set(declared)
    for name, version in _pins().items():
        where = dev if name in DEV_TOOLS else declared
        assert name in where, (f"requirements.txt pins {name}=={version}; setup.cfg does not declare it in "
                               f"{'extras dev' if name in DEV_TOOLS else 'install_requires'}")
        assert where[name].specifier.contains(version, prereleases=True), (name, version, where[name])


def test_nothing_is_declared_that_is_not_pinned():
    install, extras = _setup_cfg()
    pins = _pins()
    for req in install + extras["dev"]:
        name = canonicalize_name(req.name)
        assert name in pins or name in {"torch", "torchvision"}, f"setup.cfg declares {name}, unpinned"
    # torch comes from the local wheel store or PyPI in .ci/install.sh, never re-resolved by pip here
    torch = next(r for r in install if r.name == "torch")
    assert torch.specifier.contains("2.14.1") and not any(s.operator == "==" for s in torch.specifier)


def test_gpu_extra_is_the_faiss_gpu_build_of_our_faiss_version():
    install, extras = _setup_cfg()
    (gpu,) = extras["gpu"]
    (cpu,) = [r for r in install if r.name == "faiss-cpu"]
    assert gpu.name == "faiss-gpu" and gpu.specifier.contains(_pins()["faiss-cpu"])
    assert str(gpu.specifier) == str(cpu.specifier)
