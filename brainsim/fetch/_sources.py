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

The newer releases (FlyWire's own Zenodo Feather file, MaleCNS v1.0, BANC v888) are
public downloads; their entries below say where each size and checksum comes from, and
which could not be verified (``Dataset.notes``, printed by ``brainsim fetch``).
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
        remote: its path under the dataset's URL base, or a full URL of its own.
        size: expected size in bytes, or None if unknown.
        sha256: expected SHA-256 (lower-case hex), or None if unknown.
    """

    name: str
    remote: str
    size: int | None = None
    sha256: str | None = None

    def url(self, base: str) -> str:
        """Where to download it: ``remote`` itself if it is a full URL, else under ``base``."""
        if "://" in self.remote:
            return self.remote
        return f"{base.rstrip('/')}/{self.remote.lstrip('/')}"

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
        fmt: the loader that reads the folder (``[connectome] format``).
        notes: what is and is not verified about the entry (sources of sizes and checksums).
    """

    name: str
    folder: str
    url_base: str
    files: tuple[RemoteFile, ...]
    description: str = ""
    source: str = ""
    manual: str = ""
    fmt: str = "shiu"
    notes: str = ""


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

# ---------------------------------------------------------------------- newer releases
# Sizes and checksums below come from sources this project could read, never from a
# download made here; each entry's ``notes`` says which, and "unverified" where a value
# could not be checked (then the download is checked by size only, or not at all, and
# ``brainsim fetch`` says so).
ZENODO_FLYWIRE = "https://zenodo.org/records/10676866/files"
FLYWIRE_ANNOTATIONS = (
    "https://raw.githubusercontent.com/flyconnectome/flywire_annotations/main/"
    "supplemental_files/Supplemental_file1_neuron_annotations.tsv"
)
MALECNS_BASE = "https://storage.googleapis.com/flyem-male-cns/v1.0/connectome-data/flat-connectome"
BANC_BASE = (
    "https://storage.googleapis.com/lee-lab_brain-and-nerve-cord-fly-connectome/compiled_data/"
    "banc_888"
)

DATASETS.update(
    {
        "flywire_feather:783": Dataset(
            name="flywire_feather:783",
            folder="flywire_feather_783",
            url_base=ZENODO_FLYWIRE,
            files=(
                # 852,022,274 bytes: the size Zenodo lists for the file (record 10676866,
                # version 783.0), pinned alike by several public projects; Zenodo publishes
                # an md5 (f48f972d262323a102aed49af1396b8a), no sha256: size only.
                RemoteFile(
                    "proofread_connections_783.feather",
                    "proofread_connections_783.feather",
                    852_022_274,
                ),
                # the annotation table changes between versions of its repository (sizes of
                # 27.0 to 31.7 MB are pinned by different projects): unverified
                RemoteFile("Supplemental_file1_neuron_annotations.tsv", FLYWIRE_ANNOTATIONS),
            ),
            description="FlyWire release 783 as FlyWire published it: Zenodo Feather "
            "(format 'flywire_feather')",
            source="Zenodo 10.5281/zenodo.10676866 (CC BY 4.0); annotations: "
            "github.com/flyconnectome/flywire_annotations (main)",
            fmt="flywire_feather",
            notes="connections: size only (Zenodo gives md5, not sha256); annotations: "
            "unverified (no fixed size or checksum; the repository's main branch moves)",
        ),
        "malecns:v1.0": Dataset(
            name="malecns:v1.0",
            folder="malecns_v1.0",
            url_base=MALECNS_BASE,
            files=(
                # sizes: the bucket's object sizes; sha256: the values many independent
                # public projects pin for these objects (they agree); not recomputed here
                RemoteFile(
                    "connectome-weights-male-cns-v1.0-minconf-0.5.feather",
                    "connectome-weights-male-cns-v1.0-minconf-0.5.feather",
                    1_051_241_946,
                    "e35da783d1c686b2b58b3b87cd6a403ae43bfcfba8bff28e08ef752c1a56afc1",
                ),
                RemoteFile(
                    "body-annotations-male-cns-v1.0-minconf-0.5.feather",
                    "body-annotations-male-cns-v1.0-minconf-0.5.feather",
                    14_483_314,
                    "2177e246113e4cfbf1e7772ec37c6da1955ff22e8063d0b1f833101f99a9a3b2",
                ),
                RemoteFile(
                    "body-neurotransmitters-male-cns-v1.0.feather",
                    "body-neurotransmitters-male-cns-v1.0.feather",
                    43_282_834,
                    "95c9289220663abeb3409f3ad9e5a7f8a53f8093f5139d15502cd08da8879621",
                ),
            ),
            description="MaleCNS v1.0 (Berg et al. 2026), neuPrint flat connectome "
            "(format 'neuprint_flat')",
            source="https://male-cns.janelia.org/download/ (gs://flyem-male-cns, CC BY 4.0)",
            fmt="neuprint_flat",
            notes="sizes and sha256 as pinned by independent public projects (the publisher "
            "gives md5/crc32c in the bucket metadata); not recomputed from a download here",
        ),
        "banc:888": Dataset(
            name="banc:888",
            folder="banc_888",
            url_base=BANC_BASE,
            files=(
                # the bucket's meta file has been replaced at least once (57,503,026 and
                # 57,550,610 bytes are both pinned by public projects): unverified
                RemoteFile("banc_888_meta.feather", "banc_888_meta.feather"),
                # 359,161,658 bytes and this sha256: pinned alike by two public projects
                # (one from the Harvard Dataverse copy, doi:10.7910/DVN/7WTH1N)
                RemoteFile(
                    "banc_888_edgelist_simple_v3.feather",
                    "banc_888_edgelist_simple_v3.feather",
                    359_161_658,
                    "8c296e946f3c69a8c7222f30ad75fa8a98eeb189124fec6df829c9125f4be64b",
                ),
            ),
            description="BANC v888 brain and nerve cord (Bates et al. 2026; format 'banc')",
            source="gs://lee-lab_brain-and-nerve-cord-fly-connectome (CC BY 4.0); also "
            "Harvard Dataverse doi:10.7910/DVN/7WTH1N",
            fmt="banc",
            notes="edge list: size and sha256 from two public projects, not recomputed here; "
            "meta table: unverified (the bucket's copy has changed)",
        ),
    }
)

# Family names: "flywire" alone means its default release.
ALIASES = {"flywire": "flywire:783"}
FAMILIES = tuple(sorted({name.split(":", 1)[0] for name in DATASETS}))
