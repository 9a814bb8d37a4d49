"""The datasets ``brainsim fetch`` knows: where their files come from, their sizes and checksums.

Shiu et al. 2024 (Nature) published the connectome tables their model reads in the
paper's repository, https://github.com/philshiu/Drosophila_brain_model (MIT licence for
the code; the wiring is FlyWire data, CC BY 4.0). The files are ordinary git objects (not
git-lfs), so ``raw.githubusercontent.com`` serves their bytes. The URLs below pin commit
``91bdd1e7dcf193f3e7ca5a8933497fcef63b7960`` so that the bytes, and therefore the
checksums, cannot change under us when the repository's ``main`` moves.

Where the numbers come from:

- sizes of the two completeness CSVs: the length of the files as stored from the
  repository itself (3,327,347 and 3,057,611 bytes: 138,639 and 127,400 rows of 24 bytes
  plus the 11-byte header);
- all four sizes and SHA-256 sums: the values that several independent public projects
  pin when they download these files from this commit and check them (they agree); the
  ``Connectivity_783.parquet`` values are also the git-lfs pointer (``oid sha256:efeb23fb…``,
  ``size 100804642``) of a public copy of that file. They were not recomputed from a
  download here; a mismatch is reported, never ignored.

The release-630 files carry dated names upstream; they are saved under the names the
``shiu`` loader reads (``Completeness_630.csv``, ``Connectivity_630.parquet``).

FlyWire Codex files (``connections*.csv.gz``, ``neurons.csv.gz``,
``classification.csv.gz``, read by the ``flywire`` loader) are downloaded from
https://codex.flywire.ai/api/download after logging in; no public direct URL is known, so
``fetch`` only says where to put them.
"""

from __future__ import annotations

from dataclasses import dataclass

SHIU_REPOSITORY = "https://github.com/philshiu/Drosophila_brain_model"
SHIU_COMMIT = "91bdd1e7dcf193f3e7ca5a8933497fcef63b7960"
SHIU_URL_BASE = f"https://raw.githubusercontent.com/philshiu/Drosophila_brain_model/{SHIU_COMMIT}"
CODEX_DOWNLOAD_PAGE = "https://codex.flywire.ai/api/download"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        name: the file's name in the dataset folder (what the loaders look for).
        remote: its path under the dataset's URL base.
        size: expected size in bytes, or None if unknown.
        sha256: expected SHA-256 (lower-case hex), or None if unknown.
    """

    name: str
    remote: str
    size: int | None = None
    sha256: str | None = None

    @property
    def verification(self) -> str:
        """How a download of this file can be checked: by sha256, by size only, or not."""
        if self.sha256:
            return "sha256"
        if self.size is not None:
            return "size only"
        return "unverified"


@dataclass(frozen=True)
class Dataset:
    """A named dataset: the files ``fetch`` downloads into ``<data root>/<folder>/``.

    Attributes:
        name: the name configs use, e.g. ``"flywire:783"``.
        folder: the folder name under the data root, e.g. ``"flywire_783"``.
        url_base: where the files are downloaded from (``<url_base>/<remote>``).
        files: the files to download.
        description: one line for humans.
        source: where the files are published (printed with the result).
        manual: instructions for files that must be downloaded by hand; ``{folder}`` in
            it stands for the dataset's folder.
    """

    name: str
    folder: str
    url_base: str
    files: tuple[RemoteFile, ...]
    description: str = ""
    source: str = ""
    manual: str = ""


def _codex_note(release: str) -> str:
    return (
        f"FlyWire Codex files (format 'flywire') need a Codex login and are not fetched: "
        f"download release {release} from {CODEX_DOWNLOAD_PAGE} (connections.csv.gz or "
        f"connections_no_threshold.csv.gz - exactly one connections file - plus "
        f"neurons.csv.gz and classification.csv.gz) and put them in {{folder}}; then "
        f'format = "flywire", path = "flywire:{release}" finds them.'
    )


DATASETS: dict[str, Dataset] = {
    "flywire:783": Dataset(
        name="flywire:783",
        folder="flywire_783",
        url_base=SHIU_URL_BASE,
        files=(
            RemoteFile(
                "Completeness_783.csv",
                "Completeness_783.csv",
                3_327_347,
                "bbb847a4cc2caaa7a16349722d220c087317b946d148d4d592d94d250617a311",
            ),
            RemoteFile(
                "Connectivity_783.parquet",
                "Connectivity_783.parquet",
                100_804_642,
                "efeb23fb99098e9c390f6869969b2a121a2ee92c833cfc45ecb2c1d8e1af0347",
            ),
        ),
        description="FlyWire release 783 as published by Shiu et al. 2024 (format 'shiu')",
        source=f"{SHIU_REPOSITORY} (commit {SHIU_COMMIT[:12]})",
        manual=_codex_note("783"),
    ),
    "flywire:630": Dataset(
        name="flywire:630",
        folder="flywire_630",
        url_base=SHIU_URL_BASE,
        files=(
            RemoteFile(
                "Completeness_630.csv",
                "2023_03_23_completeness_630_final.csv",
                3_057_611,
                "e6b71e17671a9bdb05f55e4bc6774640a1418cb7a05125e0fc994ad40f9bfdfb",
            ),
            RemoteFile(
                "Connectivity_630.parquet",
                "2023_03_23_connectivity_630_final.parquet",
                86_630_944,
                "94db8c650533bc36ffa3223f2e62325d5648b8d6bd31c3a4e1c804628c7557b3",
            ),
        ),
        description="FlyWire release 630, the one Shiu et al. 2024 simulated (format 'shiu')",
        source=f"{SHIU_REPOSITORY} (commit {SHIU_COMMIT[:12]})",
        manual=_codex_note("630"),
    ),
}

# Family names: "flywire" alone means its default release.
ALIASES = {"flywire": "flywire:783"}
FAMILIES = tuple(sorted({name.split(":", 1)[0] for name in DATASETS}))
