"""Installs ``shared`` and the five project packages; compiles shared's optional C++/CUDA box ops.

The compiled extension ``shared._box_ops`` is optional: if no compiler is available or the build fails,
the install still succeeds and ``shared.ops`` falls back to pure PyTorch (logging one line saying so).
"""
import os
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


def extension_modules():
    """The optional ``shared._box_ops`` extension (CPU always; CUDA when nvcc + CUDA torch exist)."""
    csrc = ROOT / "shared" / "csrc"
    if os.environ.get("SHARED_NO_EXT") == "1" or not csrc.is_dir():
        return [], {}
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
        """Never fail the install because the optional kernels did not compile."""

        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler failure is non-fatal here
                print(f"[setup] WARNING: shared._box_ops did not build ({exc}); "
                      "the pure-PyTorch fallback will be used", file=sys.stderr)

        def build_extension(self, ext):
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
