"""Loaders of the Feather releases (FlyWire Zenodo, neuPrint flat connectome, BANC): exact counts.

Each test writes tiny files in tmp_path in the published layout (pyarrow.feather, as the
releases are written: Feather v2, several record batches) and compares the loaded connectome
with figures worked out by hand in the comments. Chunks of 4 rows (instead of about a
million) make every file span several chunks, so row numbers carry across them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as pf
import pytest

from brainsim.connectome import load
from brainsim.connectome._flywire_feather import load_flywire_feather

NAN = math.nan


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    import brainsim.connectome._feather as feather

    monkeypatch.setattr(feather, "CHUNK_ROWS", 4)


def write_feather(path: Path, columns: dict, chunksize: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pf.write_feather(pa.table(columns), path, chunksize=chunksize)
    return path


def assert_csr(conn, indptr, indices, counts):
    np.testing.assert_array_equal(conn.indptr, indptr)
    np.testing.assert_array_equal(conn.indices, indices)
    np.testing.assert_array_equal(conn.counts, counts)


def assert_sizes(conn, *, neurons, connections, synapses, excitatory, inhibitory):
    assert (conn.n_neurons, conn.n_connections, conn.n_synapses) == (neurons, connections, synapses)
    assert (conn.n_excitatory, conn.n_inhibitory) == (excitatory, inhibitory)


def column(conn, name):
    return conn.neurons.column(name).to_pylist()


# ------------------------------------------------------------------------------ flywire_feather
A, B, C, D, E = (720575940000000003, 720575940000000001, 720575940000000002,
                 720575940000000004, 720575940000000005)  # fmt: skip
# Sorted ids give indices B=0, C=1, A=2, D=3, E=4.
NT = ("gaba_avg", "ach_avg", "glut_avg", "oct_avg", "ser_avg", "da_avg")  # the file's order
FW_ROWS = [  # pre, post, neuropil, syn_count, {transmitter: mean probability}
    (A, B, "AL_L", 3, {"ach": 0.9, "gaba": 0.1}),
    (A, B, "AL_R", 2, {"ach": 0.6, "gaba": 0.4}),
    (A, C, "MB_CA_L", 4, {"gaba": 0.55, "ach": 0.45}),  # A: ACH 5.7 > GABA 3.3
    (B, C, "LH_L", 6, {"glut": 1.0}),
    (B, C, "AL_L", 6, {"ach": 1.0}),
    (B, A, "LH_L", 2, {"glut": 0.8, "ach": 0.2}),  # B: GLUT 7.6 > ACH 6.4
    (C, A, "LH_L", 2, None),  # no prediction (NaN): excitatory, counted
    (C, A, "AL_L", 2, {"gaba": 0.5, "ach": 0.5}),  # a tie: ACH (alphabetically first)
    (C, C, "LH_L", 1, {"da": 1.0}),  # self-connection; C: ACH 1 = DA 1 = GABA 1 -> ACH
    (A, D, "AL_L", 0, {"ach": 1.0}),  # zero synapses: dropped
    (D, E, "SEZ", 2, {"oct": 0.5, "ser": 0.5}),
    (D, E, "GNG", 2, {"ser": 1.0}),  # D: SER 3 > OCT 1; D's outputs tie SEZ/GNG -> GNG
]


def flywire_columns(rows=FW_ROWS) -> dict:
    cols = {
        "pre_pt_root_id": [r[0] for r in rows],
        "post_pt_root_id": [r[1] for r in rows],
        "neuropil": [r[2] for r in rows],
        "syn_count": [r[3] for r in rows],
    }
    for c in NT:
        name = c.removesuffix("_avg")
        cols[c] = pa.array(
            [NAN if r[4] is None else r[4].get(name, 0.0) for r in rows], pa.float32()
        )
    return cols


def write_flywire_feather(folder: Path, rows=FW_ROWS, annotations=True, **overrides) -> Path:
    cols = {**flywire_columns(rows), **overrides}
    write_feather(folder / "proofread_connections_783.feather", cols)
    if annotations:
        header = "supervoxel_id\troot_id\tflow\tsuper_class\tcell_class\tcell_type\tside"
        lines = [
            f"1\t{A}\tintrinsic\tcentral\tALPN\tDA1_lPN\tleft",
            f"2\t{B}\tintrinsic\tcentral\tLHLN\tLHAV1\tright",
            f"3\t{C}\tafferent\tsensory\t\t\tleft",
            f"4\t{D}\tintrinsic\tcentral\tLN\tSEZ_LN1\tright",
            f"5\t{E}\tefferent\tmotor\t\tMN9\tright",
        ]
        (folder / "Supplemental_file1_neuron_annotations.tsv").write_text(
            "\n".join([header, *lines]) + "\n"
        )
    return folder


def test_flywire_feather_per_neuron(tmp_path):
    conn = load_flywire_feather(write_flywire_feather(tmp_path / "fw"))
    # B(0): ->C -(6+6), ->A -2 | C(1): ->C +1, ->A +(2+2) | A(2): ->B +5, ->C +4 | D(3): ->E +4
    assert_csr(conn, [0, 2, 4, 6, 7, 7], [1, 2, 1, 2, 0, 1, 4], [-12, -2, 1, 4, 5, 4, 4])
    assert_sizes(conn, neurons=5, connections=7, synapses=32, excitatory=5, inhibitory=2)
    assert column(conn, "id") == [B, C, A, D, E]
    assert column(conn, "sign") == [-1, 1, 1, 1, 0]
    assert column(conn, "transmitter") == ["GLUT", "ACH", "ACH", "SER", None]
    assert column(conn, "cell_type") == ["LHAV1", None, "DA1_lPN", "SEZ_LN1", "MN9"]
    assert column(conn, "class") == ["LHLN", None, "ALPN", "LN", None]
    assert column(conn, "super_class") == ["central", "sensory", "central", "central", "motor"]
    assert column(conn, "side") == ["right", "left", "left", "right", "right"]
    # inputs: B AL_L 3 > AL_R 2; C LH_L 7 > AL_L 6; A LH_L 4 > AL_L 2; D none; E GNG = SEZ
    assert column(conn, "input_neuropil") == ["AL_L", "LH_L", "LH_L", None, "GNG"]
    # outputs: B LH_L 8 > AL_L 6; C LH_L 3 > AL_L 2; A MB_CA_L 4; D GNG = SEZ; E none
    assert column(conn, "output_neuropil") == ["LH_L", "LH_L", "MB_CA_L", "GNG", None]
    prov = conn.provenance
    assert (prov.format, prov.sign_rule, prov.options["release"]) == (
        "flywire_feather",
        "per_neuron",
        "783",
    )
    assert dict(prov.counts) == {
        "zero_count_rows_dropped": 1,
        "rows_without_prediction": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 4,
    }
    assert sorted(Path(s).name for s in prov.sources) == [
        "Supplemental_file1_neuron_annotations.tsv",
        "proofread_connections_783.feather",
    ]


def test_flywire_feather_per_connection(tmp_path):
    conn = load_flywire_feather(write_flywire_feather(tmp_path / "fw"), sign_rule="per_connection")
    # B: ->C GLUT -6 + ACH +6 = 0 (dropped), ->A GLUT -2 | C: ->C DA +1, ->A none +2, tie
    # ACH +2 | A: ->B ACH +5, ->C GABA -4 | D: ->E OCT/SER +4
    assert_csr(conn, [0, 1, 3, 5, 6, 6], [2, 1, 2, 0, 1, 4], [-2, 1, 4, 5, -4, 4])
    assert_sizes(conn, neurons=5, connections=6, synapses=20, excitatory=4, inhibitory=2)
    assert column(conn, "sign") == [-1, 1, 1, 1, 0]  # the neuron table keeps the per-neuron sign
    assert conn.provenance.sign_rule == "per_connection"
    assert dict(conn.provenance.counts) == {
        "zero_count_rows_dropped": 1,
        "rows_without_prediction": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 4,
        "zero_sum_pairs_dropped": 1,
    }


def test_flywire_feather_without_annotations_from_the_file(tmp_path):
    folder = write_flywire_feather(tmp_path / "fw", annotations=False)
    conn = load_flywire_feather(folder / "proofread_connections_783.feather")
    assert column(conn, "id") == [B, C, A, D, E]
    assert conn.neurons.column_names == [
        "id",
        "input_neuropil",
        "output_neuropil",
        "transmitter",
        "sign",
    ]
    assert conn.n_synapses == 32


def test_flywire_feather_unknown_ids_allowed(tmp_path):
    folder = write_flywire_feather(tmp_path / "fw")
    path = folder / "Supplemental_file1_neuron_annotations.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")  # drop D and E
    conn = load_flywire_feather(folder, allow_unknown_ids=True)
    assert column(conn, "id") == [B, C, A, D, E]
    assert conn.provenance.counts["unknown_ids_added"] == 2
    assert column(conn, "cell_type") == ["LHAV1", None, "DA1_lPN", None, None]


def test_flywire_feather_exact_duplicates_summed(tmp_path):
    rows = [(A, B, "AL_L", 3, {"ach": 1.0}), (A, B, "AL_L", 3, {"ach": 1.0}),
            (B, A, "AL_L", 1, {"gaba": 1.0})]  # fmt: skip
    conn = load_flywire_feather(write_flywire_feather(tmp_path / "fw", rows, annotations=False))
    # B(0): ->A -1 | A(1): ->B 3+3
    assert_csr(conn, [0, 1, 2], [1, 0], [-1, 6])
    assert dict(conn.provenance.counts) == {"duplicate_rows_merged": 1, "pair_rows_merged": 1}


def test_flywire_feather_registry_and_cache(tmp_path):
    folder = write_flywire_feather(tmp_path / "fw")
    conn = load(folder, "flywire_feather", cache_dir=tmp_path / "cache")
    again = load(folder, "flywire_feather", cache_dir=tmp_path / "cache")
    assert_csr(again, conn.indptr, conn.indices, conn.counts)
    assert again.neurons.equals(conn.neurons)
    assert again.provenance == conn.provenance


# ------------------------------------------------------------------------------ neuprint_flat
WEIGHTS = "connectome-weights-male-cns-v1.0-minconf-0.5.feather"
ANNOTATIONS = "body-annotations-male-cns-v1.0-minconf-0.5.feather"
TRANSMITTERS = "body-neurotransmitters-male-cns-v1.0.feather"
FLAT_WEIGHTS = [  # body_pre, body_post, weight
    (10, 20, 5),
    (20, 10, 3),
    (30, 10, 2),
    (10, 40, 7),  # 40 has no superclass: not a neuron, row dropped
    (777, 10, 4),  # 777 has no annotation row (a fragment): dropped
    (50, 50, 1),  # self-connection
    (10, 20, 2),  # repeats row 1's pair: summed to 7
    (20, 30, 0),  # zero: dropped
    (50, 20, 6),
    (30, 20, 1),
]


def write_flat(folder: Path, weights=FLAT_WEIGHTS, **weight_overrides) -> Path:
    write_feather(
        folder / ANNOTATIONS,
        {
            "bodyId": [30, 10, 50, 40, 20],
            "type": ["R7", "KC", "MN1", None, "MBON01"],
            "instance": ["R7_R", "KC_L", "MN1_L", None, "MBON01_R"],
            "superclass": ["ol_sensory", "cb_intrinsic", "vnc_motor", None, "cb_intrinsic"],
            "class": ["photoreceptor", "Kenyon_cell", "motor", None, "MBON"],
            "somaSide": ["R", "L", "L", None, "R"],
            "status": ["Traced", "Traced", "Traced", "Orphan", "Traced"],
        },
    )
    write_feather(
        folder / TRANSMITTERS,
        {
            "body": [10, 20, 30, 50, 40, 999, 10],
            "cell_type": ["KC", "MBON01", "R7", "MN1", None, None, "KC"],
            "predicted_nt": [
                "acetylcholine",
                "gaba",
                "histamine",
                "acetylcholine",
                "gaba",
                "acetylcholine",
                "acetylcholine",
            ],  # fmt: skip
            "consensus_nt": [
                "acetylcholine",
                "glutamate",
                "histamine",
                "unclear",
                "gaba",
                "acetylcholine",
                "acetylcholine",
            ],  # fmt: skip
        },
    )
    cols = {
        "body_pre": [w[0] for w in weights],
        "body_post": [w[1] for w in weights],
        "weight": [w[2] for w in weights],
    }
    write_feather(folder / WEIGHTS, {**cols, **weight_overrides})
    return folder


def test_neuprint_flat_counts(tmp_path):
    from brainsim.connectome._neuprint_flat import load_neuprint_flat

    conn = load_neuprint_flat(write_flat(tmp_path / "mcns"))
    # neurons 10(0) ach +1, 20(1) glutamate -1, 30(2) histamine +1, 50(3) unclear +1
    # 10: ->20 5+2 | 20: ->10 -3 | 30: ->10 2, ->20 1 | 50: ->20 6, ->50 1
    assert_csr(conn, [0, 1, 2, 4, 6], [1, 0, 0, 1, 1, 3], [7, -3, 2, 1, 6, 1])
    assert_sizes(conn, neurons=4, connections=6, synapses=20, excitatory=5, inhibitory=1)
    assert column(conn, "id") == [10, 20, 30, 50]
    assert column(conn, "cell_type") == ["KC", "MBON01", "R7", "MN1"]
    assert column(conn, "instance") == ["KC_L", "MBON01_R", "R7_R", "MN1_L"]
    assert column(conn, "class") == ["Kenyon_cell", "MBON", "photoreceptor", "motor"]
    assert column(conn, "super_class") == ["cb_intrinsic", "cb_intrinsic", "ol_sensory",
                                           "vnc_motor"]  # fmt: skip
    assert column(conn, "side") == ["L", "R", "R", "L"]
    assert column(conn, "transmitter") == ["acetylcholine", "glutamate", "histamine", None]
    assert column(conn, "sign") == [1, -1, 1, 1]
    prov = conn.provenance
    assert (prov.format, prov.sign_rule, prov.options["release"]) == (
        "neuprint_flat",
        "per_neuron",
        "male-cns:v1.0",
    )
    assert dict(prov.counts) == {
        "annotation_rows_without_superclass": 1,
        "rows_with_non_neuron_dropped": 2,
        "synapses_with_non_neuron_dropped": 11,
        "zero_count_rows_dropped": 1,
        "transmitter_rows_repeated": 1,
        "transmitter_rows_unused": 2,  # bodies 40 and 999
        "neurons_without_transmitter": 1,  # 50: 'unclear'
        "histamine_neurons_excitatory": 1,  # 30
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }
    assert sorted(Path(s).name for s in prov.sources) == sorted([ANNOTATIONS, TRANSMITTERS,
                                                                 WEIGHTS])  # fmt: skip


def test_neuprint_flat_predicted_nt_and_registry_cache(tmp_path):
    folder = write_flat(tmp_path / "mcns")
    conn = load(folder, "neuprint_flat", cache_dir=tmp_path / "cache",
                transmitter_column="predicted_nt")  # fmt: skip
    # 20 gaba: still -1; 50 acetylcholine: now has a transmitter
    assert_csr(conn, [0, 1, 2, 4, 6], [1, 0, 0, 1, 1, 3], [7, -3, 2, 1, 6, 1])
    assert column(conn, "transmitter") == ["acetylcholine", "gaba", "histamine", "acetylcholine"]
    assert "neurons_without_transmitter" not in conn.provenance.counts
    again = load(folder, "neuprint_flat", cache_dir=tmp_path / "cache",
                 transmitter_column="predicted_nt")  # fmt: skip
    assert again.provenance == conn.provenance
    assert again.neurons.equals(conn.neurons)


# ------------------------------------------------------------------------------ banc
BANC_BASE = 720575941000000000
BANC_META = {  # banc_888_id (text), cell_type, super_class, proofread, neurotransmitter
    "30": ("DNp01", "descending", "TRUE", "acetylcholine"),
    "10": ("MNad1", "motor", "TRUE", "gaba"),
    "20": ("LBL40", "ascending", "FALSE", ""),
    "40": (None, "glia", "FALSE", "glutamate"),
}
BANC_EDGES = [  # pre, post, count (ids are BANC_BASE + these)
    (30, 10, 52),
    (10, 20, 4),
    (20, 30, 3),
    (30, 10, 1),  # repeats row 1's pair: summed to 53
    (20, 20, 2),  # autapse: kept
    (10, 30, 0),  # zero: dropped
    (30, 40, 5),
]


def banc_id(k) -> str:
    return str(BANC_BASE + int(k))


def write_banc(folder: Path, edges=BANC_EDGES, **edge_overrides) -> Path:
    keys = list(BANC_META)
    write_feather(
        folder / "banc_888_meta.feather",
        {
            "banc_888_id": [banc_id(k) for k in keys],
            "root_id": [banc_id(int(k) + 5) for k in keys],
            "cell_type": [BANC_META[k][0] for k in keys],
            "cell_class": [None, "motor_neuron", None, None],
            "super_class": [BANC_META[k][1] for k in keys],
            "side": ["left", "right", "left", None],
            "region": ["neck_connective", "ventral_nerve_cord", "ventral_nerve_cord", None],
            "proofread": [BANC_META[k][2] for k in keys],
            "roughly_proofread": ["FALSE"] * 4,
            "neurotransmitter_predicted": [BANC_META[k][3] for k in keys],
            "neurotransmitter_score": [0.9, 0.8, None, 0.7],
        },
    )
    cols = {
        "pre": [banc_id(e[0]) for e in edges],
        "post": [banc_id(e[1]) for e in edges],
        "count": [e[2] for e in edges],
        "norm": [0.5] * len(edges),
        "post_count": [100] * len(edges),
        "pre_count": [100] * len(edges),
    }
    write_feather(folder / "banc_888_edgelist_simple_v3.feather", {**cols, **edge_overrides})
    return folder


def test_banc_counts(tmp_path):
    from brainsim.connectome._banc import load_banc

    conn = load_banc(write_banc(tmp_path / "banc"))
    # sorted ids 10(0) gaba -1, 20(1) none +1, 30(2) ach +1, 40(3) glutamate, no outputs
    # 10: ->20 -4 | 20: ->20 +2, ->30 +3 | 30: ->10 52+1, ->40 +5
    assert_csr(conn, [0, 1, 3, 5, 5], [1, 1, 2, 0, 3], [-4, 2, 3, 53, 5])
    assert_sizes(conn, neurons=4, connections=5, synapses=67, excitatory=4, inhibitory=1)
    assert column(conn, "id") == [BANC_BASE + k for k in (10, 20, 30, 40)]
    assert conn.neurons.schema.field("id").type == pa.int64()
    assert column(conn, "cell_type") == ["MNad1", "LBL40", "DNp01", None]
    assert column(conn, "class") == ["motor_neuron", None, None, None]
    assert column(conn, "super_class") == ["motor", "ascending", "descending", "glia"]
    assert column(conn, "region")[0] == "ventral_nerve_cord"
    assert column(conn, "proofread") == [True, False, True, False]
    assert column(conn, "transmitter") == ["gaba", None, "acetylcholine", "glutamate"]
    assert column(conn, "sign") == [-1, 1, 1, 0]
    prov = conn.provenance
    assert (prov.format, prov.sign_rule, prov.options["release"]) == ("banc", "per_neuron", "888")
    assert dict(prov.counts) == {
        "zero_count_rows_dropped": 1,
        "neurons_without_transmitter": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }


def test_banc_integer_ids_and_registry(tmp_path):
    folder = write_banc(tmp_path / "banc")
    edges = pf.read_table(folder / "banc_888_edgelist_simple_v3.feather")
    ints = {c: edges.column(c).cast(pa.int64()) for c in ("pre", "post")}
    write_feather(folder / "banc_888_edgelist_simple_v3.feather",
                  {**{c: edges.column(c) for c in edges.column_names}, **ints})  # fmt: skip
    conn = load(folder, "banc")
    assert conn.counts.tolist() == [-4, 2, 3, 53, 5]
