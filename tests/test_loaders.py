"""File-format loaders on tiny hand-written files: every count checked exactly.

Each test writes its own files in tmp_path in the exact format of the public release
(Shiu et al. 2024, FlyWire Codex, neuPrint, a generic edge list) and compares the loaded
connectome with figures worked out by hand in the comments. The C. elegans test checks
the loader against cect's own matrices.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brainsim.connectome import ConnectomeError, load, load_file, save
from brainsim.connectome._celegans import load_celegans
from brainsim.connectome._edgelist import load_edgelist
from brainsim.connectome._flywire import load_flywire
from brainsim.connectome._neuprint import load_neuprint
from brainsim.connectome._shiu import load_shiu


# ------------------------------------------------------------------------------ helpers
def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    """Write a CSV (gzip-compressed when the name ends in .gz)."""
    text = "\n".join([header, *rows]) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def assert_csr(conn, indptr, indices, counts):
    np.testing.assert_array_equal(conn.indptr, indptr)
    np.testing.assert_array_equal(conn.indices, indices)
    np.testing.assert_array_equal(conn.counts, counts)
    assert conn.indptr.dtype == np.int64
    assert conn.indices.dtype == np.int32
    assert conn.counts.dtype == np.int32


def assert_sizes(conn, *, neurons, connections, synapses, excitatory, inhibitory):
    assert conn.n_neurons == neurons
    assert conn.n_connections == connections
    assert conn.n_synapses == synapses
    assert conn.n_excitatory == excitatory
    assert conn.n_inhibitory == inhibitory


def column(conn, name):
    return conn.neurons.column(name).to_pylist()


# ------------------------------------------------------------------------------ shiu
# Completeness order defines the indices: 30 -> 0, 10 -> 1, 20 -> 2, 40 -> 3.
SHIU_IDS = [30, 10, 20, 40]
SHIU_INDEX = {i: k for k, i in enumerate(SHIU_IDS)}
SHIU_ROWS = [  # pre, post, Connectivity, Excitatory
    (30, 10, 5, 1),
    (10, 20, 2, -1),
    (10, 30, 0, -1),  # zero synapses: dropped and counted
    (20, 20, 1, 1),  # self-connection: kept and counted
    (30, 10, 3, 1),  # repeats row 1's pair: summed to 8
    (10, 30, 4, -1),
]


def write_shiu(folder: Path, release: str = "783", rows=SHIU_ROWS, ids=SHIU_IDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    completed = ["True", "False", "True", "True"]
    write_csv(
        folder / f"Completeness_{release}.csv",
        ",Completed",
        [f"{i},{c}" for i, c in zip(ids, completed, strict=False)],
    )
    index = {i: k for k, i in enumerate(ids)}
    pq.write_table(
        pa.table(
            {
                "Presynaptic_ID": [r[0] for r in rows],
                "Postsynaptic_ID": [r[1] for r in rows],
                "Presynaptic_Index": [index[r[0]] for r in rows],
                "Postsynaptic_Index": [index[r[1]] for r in rows],
                "Connectivity": [r[2] for r in rows],
                "Excitatory": [r[3] for r in rows],
                "Excitatory x Connectivity": [r[2] * r[3] for r in rows],
            }
        ),
        folder / f"Connectivity_{release}.parquet",
    )
    return folder


def test_shiu_counts_and_csr(tmp_path):
    conn = load_shiu(write_shiu(tmp_path / "shiu"))
    # 30(0): ->10(1) 5+3=8 | 10(1): ->30(0) -4, ->20(2) -2 | 20(2): ->20(2) 1 | 40(3): none
    assert_csr(conn, [0, 1, 3, 4, 4], [1, 0, 2, 2], [8, -4, -2, 1])
    assert_sizes(conn, neurons=4, connections=4, synapses=15, excitatory=2, inhibitory=2)
    assert column(conn, "id") == SHIU_IDS
    assert column(conn, "completed") == [True, False, True, True]
    assert column(conn, "sign") == [1, -1, 1, 0]
    prov = conn.provenance
    assert prov.format == "shiu"
    assert prov.sign_rule == "given"
    assert dict(prov.counts) == {
        "zero_count_rows_dropped": 1,
        "pair_rows_merged": 1,
        "self_connections_kept": 1,
    }
    names = [Path(s).name for s in prov.sources]
    assert names == ["Completeness_783.csv", "Connectivity_783.parquet"]
    assert len(prov.checksum) == 64
    np.testing.assert_array_equal(conn.index_of([10, 40]), [1, 3])


def test_shiu_release_choice(tmp_path):
    folder = write_shiu(tmp_path / "both", "783")
    write_shiu(folder, "630", rows=[(30, 10, 7, -1)])
    assert load_shiu(folder).n_synapses == 15  # 783 by default
    old = load_shiu(folder, release=630)
    assert_csr(old, [0, 1, 1, 1, 1], [1], [-7])
    assert old.provenance.options["release"] == "630"
    # a file path picks its own release
    assert load_shiu(folder / "Connectivity_630.parquet").n_synapses == 7


def test_shiu_only_630(tmp_path):
    conn = load_shiu(write_shiu(tmp_path / "old", "630"))
    assert conn.provenance.options["release"] == "630"
    assert conn.n_connections == 4


def test_shiu_per_neuron_rule(tmp_path):
    rows = [(10, 20, 5, -1), (10, 30, 1, 1), (30, 10, 2, 1)]  # 10 mostly inhibitory
    folder = write_shiu(tmp_path / "mixed", rows=rows)
    given = load_shiu(folder)
    assert_csr(given, [0, 1, 3, 3, 3], [1, 0, 2], [2, 1, -5])
    assert dict(given.provenance.counts) == {"neurons_with_mixed_output_signs": 1}
    ruled = load_shiu(folder, sign_rule="per_neuron")
    assert_csr(ruled, [0, 1, 3, 3, 3], [1, 0, 2], [2, -1, -5])
    assert ruled.provenance.sign_rule == "per_neuron"
    assert dict(ruled.provenance.counts) == {
        "neurons_with_mixed_output_signs": 1,
        "rows_sign_changed": 1,
    }
    assert column(ruled, "sign") == [1, -1, 0, 0]


def test_shiu_checksum_tracks_content(tmp_path):
    a = load_shiu(write_shiu(tmp_path / "a"))
    b = load_shiu(write_shiu(tmp_path / "b"))
    assert a.provenance.checksum == b.provenance.checksum  # same bytes, other folder
    c = load_shiu(write_shiu(tmp_path / "c", rows=SHIU_ROWS[:-1]))
    assert c.provenance.checksum != a.provenance.checksum


# ------------------------------------------------------------------------------ flywire
A, B, C, D, E = (720575940000000003, 720575940000000001, 720575940000000002,
                 720575940000000004, 720575940000000005)  # fmt: skip
# Sorted ids give indices B=0, C=1, A=2, D=3, E=4.
FLYWIRE_ROWS = [  # pre, post, neuropil, syn_count, nt_type
    (A, B, "AL_L", 3, "ACH"),
    (A, B, "AL_R", 2, "ACH"),  # same pair, other neuropil: summed to 5
    (A, C, "MB_CA_L", 4, "GABA"),  # A outputs: ACH 5 > GABA 4 -> A excitatory
    (B, C, "LH_L", 6, "GABA"),
    (B, C, "AL_L", 1, "ACH"),
    (B, A, "LH_L", 2, "ACH"),  # B outputs: GABA 6 > ACH 3 -> B inhibitory
    (C, A, "LH_L", 2, "GLUT"),
    (C, A, "AL_L", 2, "ACH"),  # C outputs: GLUT 2, ACH 2, none 1 -> excitatory (3 vs 2)
    (C, C, "LH_L", 1, ""),  # empty nt_type, self-connection
    (A, D, "AL_L", 0, "ACH"),  # zero synapses: dropped
]


def write_flywire(folder: Path, rows=FLYWIRE_ROWS, neurons=True, classification=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(
        folder / "connections.csv.gz",
        "pre_root_id,post_root_id,neuropil,syn_count,nt_type",
        [f"{a},{b},{n},{s},{t}" for a, b, n, s, t in rows],
    )
    if neurons:
        write_csv(
            folder / "neurons.csv",
            "root_id,group,nt_type,nt_type_score",
            [
                f"{A},AL.AL,ACH,0.8",
                f"{B},LH.LH,GABA,0.7",
                f"{C},LH.LH,GLUT,0.5",
                f"{D},AL.AL,GABA,0.9",
                f"{E},SEZ.SEZ,DA,0.6",
            ],  # fmt: skip
        )
    if classification:
        write_csv(
            folder / "classification.csv.gz",
            "root_id,flow,super_class,class,sub_class,cell_type,hemilineage,side,nerve",
            [
                f"{A},intrinsic,central,ALPN,,DA1_lPN,ALl1,left,",
                f"{B},intrinsic,central,LHLN,,LHAV1,,right,",
                "999,afferent,sensory,,,,,left,AN",
            ],  # fmt: skip
        )
    return folder


def test_flywire_per_neuron(tmp_path):
    conn = load_flywire(write_flywire(tmp_path / "fw"))
    # B(0): ->C -7, ->A -2 | C(1): ->C +1, ->A +4 | A(2): ->B +5, ->C +4 | D, E: none
    assert_csr(conn, [0, 2, 4, 6, 6, 6], [1, 2, 1, 2, 0, 1], [-7, -2, 1, 4, 5, 4])
    assert_sizes(conn, neurons=5, connections=6, synapses=23, excitatory=4, inhibitory=2)
    assert column(conn, "id") == [B, C, A, D, E]
    assert column(conn, "sign") == [-1, 1, 1, 0, 0]
    # majority output transmitter; C's ACH/GLUT tie goes to ACH (alphabetical); D and E
    # have no outputs and keep their neurons.csv nt_type
    assert column(conn, "transmitter") == ["GABA", "ACH", "ACH", "GABA", "DA"]
    assert column(conn, "cell_type") == ["LHAV1", None, "DA1_lPN", None, None]
    assert column(conn, "class") == ["LHLN", None, "ALPN", None, None]
    assert column(conn, "super_class") == ["central", None, "central", None, None]
    assert column(conn, "side") == ["right", None, "left", None, None]
    # most input synapses: B AL_L 3 (vs AL_R 2), C LH_L 7, A LH_L 4 (vs AL_L 2); D's only
    # input row has 0 synapses. Most output synapses: B LH_L 8, C LH_L 3, A MB_CA_L 4.
    assert column(conn, "input_neuropil") == ["AL_L", "LH_L", "LH_L", None, None]
    assert column(conn, "output_neuropil") == ["LH_L", "LH_L", "MB_CA_L", None, None]
    prov = conn.provenance
    assert prov.sign_rule == "per_neuron"
    assert dict(prov.counts) == {
        "zero_count_rows_dropped": 1,
        "rows_without_nt_type": 1,
        "classification_rows_unused": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 3,
    }
    assert sorted(Path(s).name for s in prov.sources) == [
        "classification.csv.gz",
        "connections.csv.gz",
        "neurons.csv",
    ]


def test_flywire_per_connection_differs(tmp_path):
    conn = load_flywire(write_flywire(tmp_path / "fw"), sign_rule="per_connection")
    # B(0): ->C -6+1=-5, ->A +2 | C(1): ->C +1, ->A -2+2=0 (dropped) | A(2): ->B +5, ->C -4
    assert_csr(conn, [0, 2, 3, 5, 5, 5], [1, 2, 1, 0, 1], [-5, 2, 1, 5, -4])
    assert_sizes(conn, neurons=5, connections=5, synapses=17, excitatory=3, inhibitory=2)
    assert column(conn, "sign") == [-1, 1, 1, 0, 0]  # the neuron table keeps the per-neuron sign
    assert conn.provenance.sign_rule == "per_connection"
    assert dict(conn.provenance.counts) == {
        "zero_count_rows_dropped": 1,
        "rows_without_nt_type": 1,
        "classification_rows_unused": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 3,
        "zero_sum_pairs_dropped": 1,
    }


def test_flywire_connections_only_and_file_source(tmp_path):
    folder = write_flywire(tmp_path / "fw", neurons=False, classification=False)
    conn = load_flywire(folder / "connections.csv.gz")
    # D is only in the zero-count row but is still a neuron of the file; E is unknown here
    assert column(conn, "id") == [B, C, A, D]
    assert conn.neurons.column_names == [
        "id",
        "input_neuropil",
        "output_neuropil",
        "transmitter",
        "sign",
    ]
    assert column(conn, "transmitter") == ["GABA", "ACH", "ACH", None]
    assert conn.n_synapses == 23
    assert [Path(s).name for s in conn.provenance.sources] == ["connections.csv.gz"]


def test_flywire_allow_unknown_ids(tmp_path):
    folder = write_flywire(tmp_path / "fw", classification=False)
    write_csv(folder / "neurons.csv", "root_id,nt_type", [f"{A},ACH", f"{C},GLUT"])
    conn = load_flywire(folder, allow_unknown_ids=True)
    assert column(conn, "id") == [B, C, A, D]
    assert conn.provenance.counts["unknown_ids_added"] == 2  # B and D
    assert conn.n_synapses == 23


def test_flywire_exact_duplicate_rows_summed(tmp_path):
    rows = [(A, B, "AL_L", 3, "ACH"), (A, B, "AL_L", 3, "ACH"), (B, A, "AL_L", 1, "GABA")]
    conn = load_flywire(write_flywire(tmp_path / "fw", rows=rows, neurons=False,
                                      classification=False))  # fmt: skip
    # B(0): ->A -1 | A(1): ->B 3+3=6
    assert_csr(conn, [0, 1, 2], [1, 0], [-1, 6])
    assert dict(conn.provenance.counts) == {"duplicate_rows_merged": 1, "pair_rows_merged": 1}


def test_flywire_through_registry_and_cache(tmp_path):
    folder = write_flywire(tmp_path / "fw")
    conn = load(folder, "flywire", cache_dir=tmp_path / "cache")
    again = load(folder, "flywire", cache_dir=tmp_path / "cache")
    assert_csr(again, conn.indptr, conn.indices, conn.counts)
    assert again.neurons.equals(conn.neurons)
    assert again.provenance == conn.provenance


# ------------------------------------------------------------------------------ neuprint
def write_neuprint(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(
        folder / "traced-neurons.csv",
        "bodyId,type,instance",
        ["300,KC,KC_R", "100,MBON01,MBON01(y5B'2a)_R", "200,PN,DA1_lPN_R", "400,APL,APL_R"],
    )
    write_csv(
        folder / "traced-total-connections.csv",
        "bodyId_pre,bodyId_post,weight",
        [
            "100,200,3",
            "200,300,5",
            "300,100,2",
            "200,300,1",
            "400,300,0",
            "300,300,1",
            "400,100,2",
        ],  # fmt: skip
    )
    write_csv(
        folder / "types.csv",
        "type,transmitter",
        ["KC,acetylcholine", "MBON01,glutamate", "PN,acetylcholine", "DAN,dopamine"],
    )
    write_csv(folder / "bodies.csv", "bodyId,nt_type", ["100,gaba", "200,acetylcholine"])
    return folder


def test_neuprint_by_type(tmp_path):
    folder = write_neuprint(tmp_path / "hb")
    conn = load_neuprint(folder, transmitters=folder / "types.csv")
    # ids sorted: 100(0) MBON glutamate -1, 200(1) PN +1, 300(2) KC +1, 400(3) APL unknown +1
    # 100->200 -3 | 200->300 5+1=6 | 300->100 2, 300->300 1 | 400->100 2 (400->300 has 0)
    assert_csr(conn, [0, 1, 2, 4, 5], [1, 2, 0, 2, 0], [-3, 6, 2, 1, 2])
    assert_sizes(conn, neurons=4, connections=5, synapses=14, excitatory=4, inhibitory=1)
    assert column(conn, "id") == [100, 200, 300, 400]
    assert column(conn, "cell_type") == ["MBON01", "PN", "KC", "APL"]
    assert column(conn, "instance")[0] == "MBON01(y5B'2a)_R"
    assert column(conn, "transmitter") == ["glutamate", "acetylcholine", "acetylcholine", None]
    assert column(conn, "sign") == [-1, 1, 1, 1]
    assert conn.provenance.sign_rule == "per_neuron"
    assert dict(conn.provenance.counts) == {
        "zero_count_rows_dropped": 1,
        "neurons_without_transmitter": 1,
        "transmitter_rows_unused": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }


def test_neuprint_by_body_id(tmp_path):
    folder = write_neuprint(tmp_path / "hb")
    conn = load_neuprint(folder / "traced-neurons.csv", transmitters=folder / "bodies.csv")
    # 100 gaba -1, 200 ach +1, 300 and 400 lack a transmitter (both have outputs)
    assert_csr(conn, [0, 1, 2, 4, 5], [1, 2, 0, 2, 0], [-3, 6, 2, 1, 2])
    assert column(conn, "transmitter") == ["gaba", "acetylcholine", None, None]
    assert conn.provenance.counts["neurons_without_transmitter"] == 2
    assert "transmitter_rows_unused" not in conn.provenance.counts


# ------------------------------------------------------------------------------ edgelist
EDGE_HEADER = "pre,post,count,sign,nt,signed"
EDGE_ROWS = [
    "1,2,3,1,ACH,3",
    "2,3,4,-1,GABA,-4",
    "1,2,2,1,GLUT,2",  # repeats the pair 1->2
    "3,1,0,1,ACH,0",  # zero synapses
    "3,3,1,1,,1",  # self-connection, no transmitter
]


def write_edges(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_csv(folder / "edges.csv", EDGE_HEADER, EDGE_ROWS)


def test_edgelist_sign_column_given(tmp_path):
    conn = load_edgelist(write_edges(tmp_path), sign="sign")
    # 1(0): ->2 +5 | 2(1): ->3 -4 | 3(2): ->3 +1
    assert_csr(conn, [0, 1, 2, 3], [1, 2, 2], [5, -4, 1])
    assert_sizes(conn, neurons=3, connections=3, synapses=10, excitatory=2, inhibitory=1)
    assert conn.provenance.sign_rule == "given"
    assert column(conn, "sign") == [1, -1, 1]
    assert dict(conn.provenance.counts) == {
        "zero_count_rows_dropped": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }


def test_edgelist_transmitter_column_per_connection(tmp_path):
    conn = load_edgelist(write_edges(tmp_path), sign="nt")
    # 1->2: ACH 3 - GLUT 2 = +1 | 2->3: GABA -4 | 3->3: empty, excitatory +1
    assert_csr(conn, [0, 1, 2, 3], [1, 2, 2], [1, -4, 1])
    assert conn.provenance.sign_rule == "per_connection"
    assert column(conn, "sign") == [1, -1, 1]
    assert dict(conn.provenance.counts) == {
        "neurons_with_mixed_output_signs": 1,  # neuron 1: 3 ACH and 2 GLUT synapses
        "rows_without_transmitter": 1,
        "zero_count_rows_dropped": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }


def test_edgelist_transmitter_table_per_neuron(tmp_path):
    edges = write_edges(tmp_path)
    table = write_csv(tmp_path / "nt.csv", "id,transmitter", ["1,GLUT", "2,ACH", "9,GABA"])
    conn = load_edgelist(edges, transmitter_table=table)
    # 1 glutamate -1: ->2 -5 | 2 ACH: ->3 +4 | 3 has no row: excitatory, ->3 +1
    assert_csr(conn, [0, 1, 2, 3], [1, 2, 2], [-5, 4, 1])
    assert_sizes(conn, neurons=3, connections=3, synapses=10, excitatory=2, inhibitory=1)
    assert conn.provenance.sign_rule == "per_neuron"
    assert column(conn, "transmitter") == ["GLUT", "ACH", None]
    assert dict(conn.provenance.counts) == {
        "zero_count_rows_dropped": 1,
        "transmitter_rows_unused": 1,
        "neurons_without_transmitter": 1,
        "self_connections_kept": 1,
        "pair_rows_merged": 1,
    }


def test_edgelist_signed_counts_parquet_and_neurons(tmp_path):
    path = tmp_path / "edges.parquet"
    pq.write_table(
        pa.table({"src": [10, 20, 10, 30], "dst": [20, 10, 30, 30], "w": [-2, 3, 1, -1]}), path
    )
    neurons = write_csv(
        tmp_path / "neurons.csv",
        "id,cell_type,side",
        ["30,KC,left", "20,PN,", "10,LN,right", "40,MN,left"],  # fmt: skip
    )
    conn = load_edgelist(path, pre="src", post="dst", count="w", signed_counts=True,
                         neurons=neurons)  # fmt: skip
    # 10(0): ->20 -2, ->30 +1 | 20(1): ->10 +3 | 30(2): ->30 -1 | 40(3): none
    assert_csr(conn, [0, 2, 3, 4, 4], [1, 2, 0, 2], [-2, 1, 3, -1])
    assert_sizes(conn, neurons=4, connections=4, synapses=7, excitatory=2, inhibitory=2)
    assert column(conn, "cell_type") == ["LN", "PN", "KC", "MN"]
    assert column(conn, "side") == ["right", None, "left", "left"]
    # 10 has -2 and +1: majority inhibitory
    assert column(conn, "sign") == [-1, 1, -1, 0]
    assert dict(conn.provenance.counts) == {
        "neurons_with_mixed_output_signs": 1,
        "self_connections_kept": 1,
    }


def test_edgelist_gzip(tmp_path):
    path = write_csv(tmp_path / "edges.csv.gz", EDGE_HEADER, EDGE_ROWS)
    assert load_edgelist(path, sign="sign").n_synapses == 10


# ------------------------------------------------------------------------------ C. elegans
def _cect_matrices(reader: str):
    """Chemical and gap-junction matrices of a cect dataset, restricted to neurons, by name."""
    import importlib

    from cect.Cells import is_any_neuron

    data = importlib.import_module(f"cect.readers.{reader}").get_instance(from_cache=True)
    keep = [k for k, n in enumerate(data.nodes) if is_any_neuron(n)]
    names = [data.nodes[k] for k in keep]
    chem = data.connections["Generic_CS"][np.ix_(keep, keep)]
    gap = data.connections["Generic_GJ"][np.ix_(keep, keep)]
    return names, chem, gap


@pytest.mark.parametrize("dataset, reader", [("Witvliet8", "WitvlietDataReader8"),
                                             ("Cook2019Herm", "Cook2019HermReader")])  # fmt: skip
def test_celegans_matches_cect(dataset, reader):
    pytest.importorskip("cect")
    conn = load_celegans(dataset)
    names, chem, gap = _cect_matrices(reader)
    assert conn.n_neurons == len(names)
    assert column(conn, "cell_type") == sorted(names)
    assert column(conn, "id") == list(range(len(names)))
    assert conn.n_connections == int((chem != 0).sum())
    assert conn.n_synapses == int(chem.sum())
    assert conn.gap_junctions.num_rows == int((gap != 0).sum())
    assert sum(conn.gap_junctions.column("count").to_pylist()) == int(gap.sum())
    # one pair checked by name: the strongest chemical connection in cect's matrix
    i, j = np.unravel_index(np.argmax(chem), chem.shape)
    pre, post = conn.index_of([sorted(names).index(names[i]), sorted(names).index(names[j])])
    row = slice(conn.indptr[pre], conn.indptr[pre + 1])
    k = list(conn.indices[row]).index(post)
    assert abs(int(conn.counts[row][k])) == int(chem[i, j])
    assert conn.provenance.format == "celegans"
    assert conn.provenance.sign_rule == "per_neuron"


def test_celegans_cook2019_signs_and_counts():
    pytest.importorskip("cect")
    conn = load_celegans("Cook2019Herm")
    assert_sizes(conn, neurons=302, connections=3709, synapses=20965,
                 excitatory=conn.n_excitatory, inhibitory=conn.n_inhibitory)  # fmt: skip
    names = column(conn, "cell_type")
    sign = dict(zip(names, column(conn, "sign"), strict=True))
    transmitter = dict(zip(names, column(conn, "transmitter"), strict=True))
    assert transmitter["DD1"] == "GABA" and sign["DD1"] == -1  # GABAergic motor neuron
    assert transmitter["AVAL"] == "Acetylcholine" and sign["AVAL"] == 1
    assert sign["SMDVL"] == 1  # acetylcholine + GABA: mixed, counted, excitatory
    counts = conn.provenance.counts
    assert counts["non_neuron_cells_dropped"] == 473 - 302
    assert counts["self_connections_kept"] == 38
    assert counts["mixed_transmitter_neurons"] > 0
    # every connection of a neuron carries its sign
    np.testing.assert_array_equal(
        np.sign(conn.counts), np.asarray(column(conn, "sign"))[conn.pre_indices()]
    )
    # the gap-junction table is symmetric, as cect's matrix
    gj = conn.gap_junctions
    pairs = set(zip(gj.column("pre").to_pylist(), gj.column("post").to_pylist(), strict=True))
    assert all((b, a) in pairs for a, b in pairs)
    assert gj.schema.field("pre").type == pa.int32()


def test_celegans_glutamate_option_and_all_cells():
    pytest.importorskip("cect")
    gaba_only = load_celegans("Witvliet8", inhibitory=("GABA",))
    default = load_celegans("Witvliet8")
    assert gaba_only.n_inhibitory < default.n_inhibitory
    assert gaba_only.n_synapses == default.n_synapses
    everything = load_celegans("Witvliet8", cells="all")
    assert everything.n_neurons > default.n_neurons
    assert "non_neuron_cells_dropped" not in everything.provenance.counts
    assert set(column(everything, "class")) >= {"neuron", "muscle"}


def test_celegans_transmitter_file(tmp_path):
    pytest.importorskip("cect")
    # AIB's outputs lie in the nerve ring, which Witvliet et al. reconstructed
    table = write_csv(tmp_path / "nt.csv", "name,transmitter", ["AIBL,GABA", "AIBR,ACh+GABA"])
    conn = load_celegans("Witvliet8", transmitters=table)
    names = column(conn, "cell_type")
    sign = dict(zip(names, column(conn, "sign"), strict=True))
    assert sign["AIBL"] == -1 and sign["AIBR"] == 1
    assert dict(zip(names, column(conn, "transmitter"), strict=True))["AIBR"] == (
        "Acetylcholine+GABA"
    )
    counts = conn.provenance.counts
    assert counts["mixed_transmitter_neurons"] == 1
    # every other neuron with outputs lacks a transmitter
    n_with_outputs = int((conn.out_degree() > 0).sum())
    assert counts["neurons_without_fast_transmitter"] == n_with_outputs - 2
    assert conn.n_inhibitory == int(conn.out_degree()[names.index("AIBL")])


def test_celegans_cache_roundtrip(tmp_path):
    pytest.importorskip("cect")
    conn = load_celegans("Witvliet1")
    back = load_file(save(conn, tmp_path / "c.npz"))
    assert back.gap_junctions.equals(conn.gap_junctions)
    assert back.neurons.equals(conn.neurons)
    assert back.provenance == conn.provenance


def test_unknown_format_name_is_an_error():
    with pytest.raises(ConnectomeError, match="unknown connectome format"):
        load("x", "nonsense")
