"""Installs ``shared`` and the five project packages; compiles shared's optional C++/CUDA box ops.

The compiled extension ``shared._box_ops`` is optional: if no compiler is available or the build fails,
the install still succeeds and ``shared.ops`` falls back to pure PyTorch (logging one line saying so).
"""
import os
import shutil
import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
PACKAGE_ROOTS = {
    "shared": "shared",
    "simd": "projects/SimD/simd",
    "iif": "projects/IIF/iif",
    "adasp": "projects/AdaSP/adasp",
    "rdcd": "projects/RDCD/rdcd",
    "das": "projects/DAS/das",
}


def packages_and_dirs():
    packages, package_dir = [], {}
    for name, folder in PACKAGE_ROOTS.items():
        packages.append(name)
        package_dir[name] = folder
        for sub in find_packages(folder):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = os.path.join(folder, *sub.split("."))
    return packages, package_dir


def _has_cudart(home: Path) -> bool:
    return any(next((home / lib).glob("libcudart.so*"), None) is not None
               for lib in ("lib64", "lib", "targets/x86_64-linux/lib"))


def locate_cuda_home() -> None:
    """Point ``CUDA_HOME`` at a real toolkit before torch.utils.cpp_extension guesses it.

    torch derives it from ``which nvcc``; when nvcc is a wrapper script (``/usr/local/bin/nvcc`` here)
    that guess is ``/usr/local``, which has no ``libcudart`` and the link fails.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    candidates = [Path("/usr/local/cuda")] + sorted(Path("/usr/local").glob("cuda-*"), reverse=True)
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.insert(0, Path(os.path.realpath(nvcc)).parent.parent)
    for home in candidates:
        if (home / "bin" / "nvcc").exists() and _has_cudart(home):
            os.environ["CUDA_HOME"] = str(home)
            return


def extension_modules():
    """The optional ``shared._box_ops`` extension (CPU always; CUDA when nvcc + CUDA torch exist)."""
    csrc = ROOT / "shared" / "csrc"
    if os.environ.get("SHARED_NO_EXT") == "1" or not csrc.is_dir():
        return [], {}
    locate_cuda_home()
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError:
        return [], {}
    cpu_sources = sorted(str(p.relative_to(ROOT)) for p in csrc.glob("*.cpp"))
    cuda_sources = sorted(str(p.relative_to(ROOT)) for p in csrc.glob("*.cu"))
    if not cpu_sources:
        return [], {}
    want_cuda = (
        bool(cuda_sources)
        and cpp_extension.CUDA_HOME is not None
        and torch.version.cuda is not None
        and os.environ.get("SHARED_NO_CUDA") != "1"
    )
    if want_cuda and not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        # No GPU to ask for its architecture (torch would fail with an IndexError): build sm_75 code plus
        # PTX, which every GPU CUDA 13 supports can run (JIT-compiled for newer ones). Set
        # TORCH_CUDA_ARCH_LIST yourself to build native code for other architectures.
        os.environ["TORCH_CUDA_ARCH_LIST"] = "7.5+PTX"
    define_macros = [("WITH_CUDA", None)] if want_cuda else []
    extra = {"cxx": ["-O3", "-fopenmp"]}
    if want_cuda:
        extra["nvcc"] = ["-O3", "--expt-relaxed-constexpr"]
        ext_cls, sources = cpp_extension.CUDAExtension, cpu_sources + cuda_sources
    else:
        ext_cls, sources = cpp_extension.CppExtension, cpu_sources
    print(f"[setup] shared._box_ops: building CPU kernels{' and CUDA kernels' if want_cuda else ''}"
          f" (CUDA_HOME={cpp_extension.CUDA_HOME}, torch CUDA={torch.version.cuda})", file=sys.stderr)
    ext = ext_cls(
        "shared._box_ops",
        sources,
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
    )

    class OptionalBuildExt(cpp_extension.BuildExtension):
        """Never fail the install because the optional kernels did not compile.

        A failed CUDA build is retried CPU-only; if that fails too, the pure-PyTorch fallback is used.
        """

        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler failure is non-fatal here
                print(f"[setup] WARNING: shared._box_ops did not build ({exc}); "
                      "the pure-PyTorch fallback will be used", file=sys.stderr)

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
                return
            except Exception as exc:  # noqa: BLE001
                if not any(src.endswith(".cu") for src in ext.sources):
                    print(f"[setup] WARNING: shared._box_ops did not build ({exc}); "
                          "the pure-PyTorch fallback will be used", file=sys.stderr)
                    return
                print(f"[setup] WARNING: the CUDA kernels of shared._box_ops did not build ({exc}); "
                      "retrying with the CPU kernels only", file=sys.stderr)
            ext.sources = [src for src in ext.sources if not src.endswith(".cu")]
            ext.define_macros = [m for m in ext.define_macros if m[0] != "WITH_CUDA"]
            ext.extra_compile_args = {"cxx": extra["cxx"]}
            ext.libraries = [lib for lib in ext.libraries if "cuda" not in lib]
            ext.library_dirs = [d for d in ext.library_dirs if "cuda" not in d]
            self.force = True  # the CPU objects were compiled with WITH_CUDA: rebuild them
            try:
                super().build_extension(ext)
            except Exception as exc:  # noqa: BLE001
                print(f"[setup] WARNING: shared._box_ops did not build ({exc}); "
                      "the pure-PyTorch fallback will be used", file=sys.stderr)

    return [ext], {"build_ext": OptionalBuildExt.with_options(use_ninja=False)}


packages, package_dir = packages_and_dirs()
ext_modules, cmdclass = extension_modules()
setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"shared": ["csrc/*"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
