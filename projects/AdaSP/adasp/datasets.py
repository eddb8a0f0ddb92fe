"""ReID datasets of the AdaSP project: fastreid's loaders read from ``$FASTREID_DATASETS`` at call time, with
checked Market-1501-style file names, and the embedded synthetic set.

* :func:`load_reid_dataset` -- a ``DATASETS.NAMES`` / ``DATASETS.TESTS`` entry as a fastreid dataset; a
  missing folder names the dataset, the path and the environment variable; an unknown name lists the
  known ones.
* Market-1501 and DukeMTMC-reID are read by :class:`StrictMarket1501` / :class:`StrictDukeMTMC`: fastreid's
  loaders with a file-name parser that names the file and the expected pattern when a name does not parse or
  its person id / camera is out of range (fastreid fails with ``'NoneType' object has no attribute 'groups'``
  or a bare ``AssertionError``), reads ``.JPG`` like ``.jpg`` (fastreid skips it without a word) and lists
  files in sorted order (fastreid's ``glob`` order depends on the file system).
* VeRi-776 and VehicleID are read from the folder they are released as (``VeRi/``, ``VehicleID_V1.0/``) or
  from fastreid's rename (``veri/``, ``vehicleid/``): :func:`with_release_folder`.
* :func:`check_test_set` -- a test set needs queries and a gallery; :class:`~adasp.trainer.AdaSPTrainer`
  checks every ``DATASETS.TESTS`` entry before training starts.
* ``SyntheticMarket1501`` *is* the Market-1501 loader; it reads the sub-folder ``synthetic_reid/`` of
  ``$FASTREID_DATASETS`` so that the generated data never collides with a real Market-1501 copy.
"""
from __future__ import annotations

import logging
import os
import random
import re
from typing import Dict, List, Tuple

from fastreid.data.datasets import DATASET_REGISTRY
from fastreid.data.datasets.dukemtmcreid import DukeMTMC
from fastreid.data.datasets.market1501 import Market1501

from shared.datasets.paths import FASTREID_ENV, dataset_root
from shared.datasets.synthetic_reid import SyntheticReIDSpec, generate_synthetic_market1501
from shared.registry import get_or_raise

__all__ = ["SYNTHETIC_SUBDIR", "StrictDukeMTMC", "StrictMarket1501", "SyntheticMarket1501", "check_test_set",
           "load_reid_dataset", "parse_market_style_name", "prepare_synthetic_market1501"]

logger = logging.getLogger(__name__)

SYNTHETIC_SUBDIR = "synthetic_reid"

# "<person id>_c<camera>" at the start of the name, ".jpg" (any case) at its end -- the part of the name
# fastreid's Market1501 / DukeMTMC loaders read (their regex ``([-\d]+)_c(\d)``).
_MARKET_STYLE_NAME = re.compile(r"^(-?\d+)_c(\d+)[^/\\]*\.jpg$", re.IGNORECASE)


def parse_market_style_name(path: str, pid_range: Tuple[int, int], camera_range: Tuple[int, int],
                            example: str, junk_pids: Tuple[int, ...] = ()) -> Tuple[int, int]:
    """``(pid, camera)`` of a Market-1501-style image name ``<pid>_c<camera>...jpg`` (camera 1-based).

    Raises ``ValueError`` naming the file, the expected pattern and the valid ranges when the name does not
    parse or its pid / camera is out of range; pids in ``junk_pids`` are returned as they are (the caller
    drops them).
    """
    name = os.path.basename(path)
    match = _MARKET_STYLE_NAME.match(name)
    if match is None:
        raise ValueError(f"{path}: image name {name!r} does not follow the pattern "
                         f"'<person id>_c<camera>...jpg' (e.g. {example!r})")
    pid, camera = int(match.group(1)), int(match.group(2))
    if pid not in junk_pids and not pid_range[0] <= pid <= pid_range[1]:
        raise ValueError(f"{path}: person id {pid} is outside [{pid_range[0]}, {pid_range[1]}]"
                         f"{' (or one of ' + str(list(junk_pids)) + ')' if junk_pids else ''}")
    if not camera_range[0] <= camera <= camera_range[1]:
        raise ValueError(f"{path}: camera c{camera} is outside c{camera_range[0]}..c{camera_range[1]}")
    return pid, camera


class _CheckedNames:
    """``process_dir`` of fastreid's Market1501 / DukeMTMC (same records, same train-id prefixes) with
    :func:`parse_market_style_name`; listed before the fastreid class."""

    dataset_name: str
    name_example = ""
    pid_range = (0, 0)
    camera_range = (1, 1)
    junk_pids: Tuple[int, ...] = ()  # dropped, as fastreid drops them

    def process_dir(self, dir_path: str, is_train: bool = True) -> List[tuple]:
        names = sorted(os.listdir(dir_path))
        images = [name for name in names if name.lower().endswith(".jpg")]
        if len(images) < len(names):
            logger.info("%s: %d non-.jpg files ignored (e.g. %s)", dir_path, len(names) - len(images),
                        next(name for name in names if not name.lower().endswith(".jpg")))
        data = []
        for name in images:
            path = os.path.join(dir_path, name)
            pid, camera = parse_market_style_name(path, self.pid_range, self.camera_range, self.name_example,
                                                  self.junk_pids)
            if pid in self.junk_pids:
                continue
            camid = camera - 1
            if is_train:
                data.append((path, f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"))
            else:
                data.append((path, pid, camid))
        return data


class StrictMarket1501(_CheckedNames, Market1501):
    """fastreid's ``Market1501`` with checked names: pid 0..1501 (0 = distractor), -1 = junk (dropped),
    cameras c1..c6 (Zheng et al., ICCV 2015)."""

    name_example = "0002_c1s1_000451_03.jpg"
    pid_range = (0, 1501)
    camera_range = (1, 6)
    junk_pids = (-1,)


class StrictDukeMTMC(_CheckedNames, DukeMTMC):
    """fastreid's ``DukeMTMC`` with checked names: cameras c1..c8, pids 0..9999 (four digits)."""

    name_example = "0001_c2_f0046182.jpg"
    pid_range = (0, 9999)
    camera_range = (1, 8)


@DATASET_REGISTRY.register()
class SyntheticMarket1501(StrictMarket1501):
    """Market1501 read from ``<root>/synthetic_reid/Market-1501-v15.09.15``
    (written by shared/datasets/synthetic_reid.py)."""

    dataset_dir = SYNTHETIC_SUBDIR
    dataset_name = "synthetic_market1501"


#: fastreid dataset name -> the loader used for it instead of fastreid's own
CHECKED_LOADERS = {"Market1501": StrictMarket1501, "DukeMTMC": StrictDukeMTMC}

#: fastreid's folder name (a loader's ``dataset_dir``) -> the folders tried under the root, in order: the
#: name the set is released under first, then fastreid's rename
RELEASE_FOLDERS = {"veri": ("VeRi", "veri"), "vehicleid": ("VehicleID_V1.0", "vehicleid")}


def with_release_folder(loader: type, name: str, root: str) -> type:
    """``loader`` reading the first folder of :data:`RELEASE_FOLDERS` that exists under ``root`` (a subclass
    with that ``dataset_dir``); loaders of other sets are returned unchanged. None existing is a
    ``FileNotFoundError`` naming every folder tried."""
    tried = RELEASE_FOLDERS.get(getattr(loader, "dataset_dir", None))
    if tried is None:
        return loader
    for folder in tried:
        if os.path.isdir(os.path.join(root, folder)):
            return type(loader.__name__, (loader,), {"dataset_dir": folder})
    raise FileNotFoundError(
        f"dataset {name!r}: none of the folders {[os.path.join(root, f) for f in tried]} exists (root "
        f"${FASTREID_ENV}={root!r}); see projects/AdaSP/README.md for the expected folder layout")


def registered_datasets() -> Dict[str, type]:
    """Every dataset name fastreid knows (its ``Registry`` has no public listing, hence ``_obj_map``)."""
    return dict(DATASET_REGISTRY._obj_map)


def load_reid_dataset(name: str, split_seed: int = -1, **kwargs):
    """Instantiate fastreid dataset ``name`` (``DATASETS.NAMES`` / ``DATASETS.TESTS``) under
    ``$FASTREID_DATASETS``.

    ``split_seed >= 0`` seeds the random query/gallery split some loaders draw with Python's ``random``
    (VehicleID), without disturbing the global random state. A missing folder raises ``FileNotFoundError``
    naming the dataset, the path and the env var (fastreid raises a bare ``RuntimeError('"<path>" is not
    found')``); an unknown name is a ``KeyError`` listing the registered ones.
    """
    loader = get_or_raise(registered_datasets(), name, "DATASETS.NAMES/TESTS entry")
    loader = CHECKED_LOADERS.get(name, loader)
    root = dataset_root(FASTREID_ENV)
    loader = with_release_folder(loader, name, root)
    saved_state = random.getstate()
    if split_seed >= 0:
        random.seed(split_seed)
    try:
        return loader(root=root, **kwargs)
    except RuntimeError as err:
        if "is not found" not in str(err):
            raise
        raise FileNotFoundError(
            f"dataset {name!r}: {err} (root ${FASTREID_ENV}={root!r}); see projects/AdaSP/README.md for the "
            "expected folder layout") from err
    finally:
        if split_seed >= 0:
            random.setstate(saved_state)


def check_test_set(dataset, name: str) -> None:
    """A ReID test set needs at least one query and one gallery image (``ValueError`` naming the set)."""
    num_query, num_gallery = len(dataset.query), len(dataset.gallery)
    if num_query == 0 or num_gallery == 0:
        raise ValueError(f"test set {name!r} (DATASETS.TESTS) has {num_query} query and {num_gallery} "
                         f"gallery images under ${FASTREID_ENV}={dataset_root(FASTREID_ENV)!r}; ReID "
                         "evaluation needs both")


def prepare_synthetic_market1501(spec: SyntheticReIDSpec = SyntheticReIDSpec()) -> dict:
    """Generate (or reuse) the synthetic set where ``SyntheticMarket1501`` reads it; returns the summary."""
    return generate_synthetic_market1501(os.path.join(dataset_root(FASTREID_ENV), SYNTHETIC_SUBDIR), spec)
