"""Bad input to the file loaders: every error names the file and the row, id or column.

Rows in messages are 1-based data rows (the first row after the header is row 1, on line 2
of a CSV file).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brainsim.connectome import ConnectomeError
from brainsim.connectome._celegans import load_celegans
from brainsim.connectome._edgelist import load_edgelist
from brainsim.connectome._flywire import load_flywire
from brainsim.connectome._neuprint import load_neuprint
from brainsim.connectome._shiu import load_shiu


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def esc(path: Path) -> str:
    return re.escape(str(path))


# ------------------------------------------------------------------------------ shiu
def shiu_files(folder: Path, **overrides) -> Path:
    """Completeness ids 30, 10, 20 and three good connections; ``overrides`` replace columns."""
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "Completeness_783.csv", ",Completed", ["30,True", "10,True", "20,False"])
    cols = {
        "Presynaptic_ID": [30, 10, 20],
        "Postsynaptic_ID": [10, 20, 30],
        "Presynaptic_Index": [0, 1, 2],
        "Postsynaptic_Index": [1, 2, 0],
        "Connectivity": [5, 2, 1],
        "Excitatory": [1, -1, 1],
        "Excitatory x Connectivity": [5, -2, 1],
    }
    cols.update(overrides)
    pq.write_table(pa.table(cols), folder / "Connectivity_783.parquet")
    return folder


def test_shiu_good_files_load(tmp_path):
    assert load_shiu(shiu_files(tmp_path)).n_synapses == 8


def test_shiu_missing_folder(tmp_path):
    with pytest.raises(ConnectomeError, match="no such folder"):
        load_shiu(tmp_path / "nowhere")


def test_shiu_missing_connectivity_file(tmp_path):
    folder = shiu_files(tmp_path)
    (folder / "Connectivity_783.parquet").unlink()
    with pytest.raises(ConnectomeError, match=r"Connectivity_783\.parquet: connectivity file not"):
        load_shiu(folder)


def test_shiu_missing_column(tmp_path):
    folder = shiu_files(tmp_path)
    table = pq.read_table(folder / "Connectivity_783.parquet").drop_columns(["Excitatory"])
    pq.write_table(table, folder / "Connectivity_783.parquet")
    with pytest.raises(
        ConnectomeError,
        match=r"Connectivity_783\.parquet: missing column.*'Excitatory'",
    ):
        load_shiu(folder)


def test_shiu_completeness_without_completed(tmp_path):
    folder = shiu_files(tmp_path)
    write_csv(folder / "Completeness_783.csv", ",done", ["30,True"])
    with pytest.raises(ConnectomeError, match=r"Completeness_783\.csv: expected .* 'Completed'"):
        load_shiu(folder)


def test_shiu_unknown_id(tmp_path):
    folder = shiu_files(tmp_path, Postsynaptic_ID=[10, 99, 30])
    with pytest.raises(
        ConnectomeError,
        match=r"Connectivity_783\.parquet, row 2: Postsynaptic_ID 99 is not in",
    ):
        load_shiu(folder)


def test_shiu_index_disagrees(tmp_path):
    folder = shiu_files(tmp_path, Presynaptic_Index=[0, 1, 0])
    with pytest.raises(
        ConnectomeError,
        match=r"row 3: Presynaptic_Index is 0, but Presynaptic_ID 20 is data row 3",
    ):
        load_shiu(folder)


def test_shiu_excitatory_not_a_sign(tmp_path):
    folder = shiu_files(tmp_path, Excitatory=[1, 0, 1])
    with pytest.raises(ConnectomeError, match=r"row 2: Excitatory is 0; it must be \+1"):
        load_shiu(folder)


def test_shiu_signed_count_disagrees(tmp_path):
    folder = shiu_files(tmp_path, **{"Excitatory x Connectivity": [5, 2, 1]})
    with pytest.raises(
        ConnectomeError,
        match=r"row 2: 'Excitatory x Connectivity' is 2, but .* = -2",
    ):
        load_shiu(folder)


def test_shiu_nan_count(tmp_path):
    folder = shiu_files(tmp_path, Connectivity=[5.0, float("nan"), 1.0])
    with pytest.raises(
        ConnectomeError,
        match=r"Connectivity_783\.parquet, row 2: column 'Connectivity' is nan",
    ):
        load_shiu(folder)


def test_shiu_negative_count(tmp_path):
    signed = {"Excitatory x Connectivity": [5, -2, -1]}
    folder = shiu_files(tmp_path, Connectivity=[5, 2, -1], **signed)
    with pytest.raises(ConnectomeError, match=r"row 3: column 'Connectivity' is negative \(-1\)"):
        load_shiu(folder)


def test_shiu_fractional_count(tmp_path):
    folder = shiu_files(tmp_path, Connectivity=[5.0, 2.5, 1.0])
    with pytest.raises(
        ConnectomeError,
        match=r"row 2: column 'Connectivity' is 2\.5, not a whole number",
    ):
        load_shiu(folder)


def test_shiu_duplicate_pair_error_option(tmp_path):
    folder = shiu_files(tmp_path, Presynaptic_ID=[30, 10, 30], Postsynaptic_ID=[10, 20, 10],
                        Presynaptic_Index=[0, 1, 0], Postsynaptic_Index=[1, 2, 1])  # fmt: skip
    assert load_shiu(folder).provenance.counts["pair_rows_merged"] == 1
    with pytest.raises(ConnectomeError, match=r"rows 1 and 3 name the same connection"):
        load_shiu(folder, duplicates="error")


def test_shiu_duplicate_id_in_completeness(tmp_path):
    folder = shiu_files(tmp_path)
    write_csv(folder / "Completeness_783.csv", ",Completed", ["30,True", "10,True", "30,False"])
    with pytest.raises(
        ConnectomeError,
        match=r"Completeness_783\.csv: id 30 appears twice .*rows 1 and 3",
    ):
        load_shiu(folder)


def test_shiu_float_ids(tmp_path):
    folder = shiu_files(tmp_path)
    write_csv(folder / "Completeness_783.csv", ",Completed", ["30.0,True", "10,True", "20,True"])
    with pytest.raises(
        ConnectomeError,
        match=r"Completeness_783\.csv: column '' holds floating-point",
    ):
        load_shiu(folder)


def test_shiu_bad_options(tmp_path):
    folder = shiu_files(tmp_path)
    with pytest.raises(ConnectomeError, match="sign_rule='per_connection'"):
        load_shiu(folder, sign_rule="per_connection")
    with pytest.raises(ConnectomeError, match="release='999'"):
        load_shiu(folder, release="999")
    with pytest.raises(ConnectomeError, match="Completeness_630.csv: completeness file not found"):
        load_shiu(folder, release="630")
    with pytest.raises(ConnectomeError, match="duplicates='drop'"):
        load_shiu(folder, duplicates="drop")


# ------------------------------------------------------------------------------ flywire
FW_HEADER = "pre_root_id,post_root_id,neuropil,syn_count,nt_type"


def flywire_files(folder: Path, rows: list[str], neurons: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "connections.csv.gz", FW_HEADER, rows)
    if neurons is not None:
        write_csv(folder / "neurons.csv.gz", "root_id,nt_type", neurons)
    return folder


GOOD_FW = ["1,2,AL_L,3,ACH", "2,1,AL_L,4,GABA", "1,2,AL_R,1,ACH"]


def test_flywire_missing_connections(tmp_path):
    tmp_path.joinpath("neurons.csv").write_text("root_id\n1\n")
    with pytest.raises(ConnectomeError, match=r"no connections file found"):
        load_flywire(tmp_path)


def test_flywire_two_connection_files(tmp_path):
    folder = flywire_files(tmp_path, GOOD_FW)
    write_csv(folder / "connections_princeton.csv.gz", FW_HEADER, GOOD_FW)
    with pytest.raises(ConnectomeError, match=r"several files could be the connections file"):
        load_flywire(folder)
    assert load_flywire(folder / "connections.csv.gz").n_synapses == 8


def test_flywire_missing_column(tmp_path):
    write_csv(tmp_path / "connections.csv", "pre_root_id,post_root_id,neuropil,nt_type",
              ["1,2,AL_L,ACH"])  # fmt: skip
    with pytest.raises(ConnectomeError, match=r"connections\.csv: missing column\(s\) 'syn_count'"):
        load_flywire(tmp_path)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("2,1,AL_L,,GABA", r"row 2 \(line 3\): column 'syn_count' is empty or NaN"),
        ("2,1,AL_L,NaN,GABA", r"row 2 \(line 3\): column 'syn_count' is empty or NaN"),
        ("2,1,AL_L,-4,GABA", r"row 2 \(line 3\): column 'syn_count' is negative \(-4\)"),
        ("2,1,AL_L,2.5,GABA", r"row 2 \(line 3\): column 'syn_count' is 2\.5, not a whole"),
        ("2,1,AL_L,many,GABA", r"row 2 \(line 3\): column 'syn_count' is 'many', not a synapse"),
        ("2,x,AL_L,4,GABA", r"row 2 \(line 3\): column 'post_root_id' is 'x', not a neuron id"),
    ],
)
def test_flywire_bad_values(tmp_path, bad, message):
    folder = flywire_files(tmp_path, [GOOD_FW[0], bad, GOOD_FW[2]])
    with pytest.raises(ConnectomeError, match=esc(folder / "connections.csv.gz") + ", " + message):
        load_flywire(folder)


def test_flywire_unknown_id(tmp_path):
    folder = flywire_files(tmp_path, [*GOOD_FW, "1,7,AL_L,1,ACH"], neurons=["1,ACH", "2,GABA"])
    with pytest.raises(
        ConnectomeError,
        match=r"row 4 \(line 5\): post_root_id 7 is not in "
        r".*neurons\.csv\.gz.*allow_unknown_ids=True",
    ):
        load_flywire(folder)
    assert load_flywire(folder, allow_unknown_ids=True).provenance.counts["unknown_ids_added"] == 1


def test_flywire_duplicate_row_error_option(tmp_path):
    folder = flywire_files(tmp_path, [*GOOD_FW, "1,2,AL_R,2,ACH"])
    assert load_flywire(folder).provenance.counts["duplicate_rows_merged"] == 1
    with pytest.raises(
        ConnectomeError,
        match=r"rows 3 and 4 name the same pair and neuropil \(pre_root_id=1, post_root_id=2, "
        r"neuropil=AL_R\)",
    ):
        load_flywire(folder, duplicates="error")


def test_flywire_duplicate_neuron_row(tmp_path):
    folder = flywire_files(tmp_path, GOOD_FW, neurons=["1,ACH", "2,GABA", "1,ACH"])
    with pytest.raises(
        ConnectomeError,
        match=r"neurons\.csv\.gz: id 1 appears twice in column 'root_id' \(rows 1 and 3\)",
    ):
        load_flywire(folder)


def test_flywire_bad_sign_rule(tmp_path):
    with pytest.raises(ConnectomeError, match="sign_rule='given'"):
        load_flywire(flywire_files(tmp_path, GOOD_FW), sign_rule="given")


def test_flywire_unknown_file_type(tmp_path):
    path = tmp_path / "connections.txt"
    path.write_text(FW_HEADER + "\n")
    with pytest.raises(ConnectomeError, match=r"connections\.txt: unknown file type"):
        load_flywire(path)


# ------------------------------------------------------------------------------ neuprint
def neuprint_files(folder: Path, connections: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "traced-neurons.csv", "bodyId,type,instance", ["1,KC,KC_R", "2,PN,PN_R"])
    write_csv(folder / "traced-total-connections.csv", "bodyId_pre,bodyId_post,weight",
              connections or ["1,2,3", "2,1,4"])  # fmt: skip
    write_csv(folder / "nt.csv", "bodyId,transmitter", ["1,acetylcholine", "2,gaba"])
    return folder


def test_neuprint_needs_transmitters(tmp_path):
    with pytest.raises(ConnectomeError, match=r"carry no transmitters.*transmitters=PATH"):
        load_neuprint(neuprint_files(tmp_path))


def test_neuprint_missing_file(tmp_path):
    folder = neuprint_files(tmp_path)
    (folder / "traced-total-connections.csv").unlink()
    with pytest.raises(
        ConnectomeError,
        match=r"traced-total-connections\.csv: connection file not found",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv")


def test_neuprint_unknown_body(tmp_path):
    folder = neuprint_files(tmp_path, ["1,2,3", "5,1,4"])
    with pytest.raises(
        ConnectomeError,
        match=r"traced-total-connections\.csv, row 2 \(line 3\): bodyId_pre 5 is not in "
        r".*traced-neurons\.csv",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv")


def test_neuprint_negative_weight(tmp_path):
    folder = neuprint_files(tmp_path, ["1,2,3", "2,1,-4"])
    with pytest.raises(
        ConnectomeError,
        match=r"traced-total-connections\.csv, row 2 \(line 3\): column 'weight' is negative",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv")


def test_neuprint_duplicates_error(tmp_path):
    folder = neuprint_files(tmp_path, ["1,2,3", "2,1,4", "1,2,1"])
    assert load_neuprint(folder, transmitters=folder / "nt.csv").counts.tolist() == [4, -4]
    with pytest.raises(
        ConnectomeError,
        match=r"rows 1 and 3 name the same pair \(bodyId_pre=1, bodyId_post=2\)",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv", duplicates="error")


def test_neuprint_missing_transmitter_error(tmp_path):
    folder = neuprint_files(tmp_path)
    write_csv(folder / "nt.csv", "bodyId,transmitter", ["1,acetylcholine"])
    with pytest.raises(
        ConnectomeError,
        match=r"nt\.csv: neuron 2 .*has output synapses but no transmitter",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv", missing_transmitter="error")


def test_neuprint_transmitter_table_columns(tmp_path):
    folder = neuprint_files(tmp_path)
    write_csv(folder / "nt.csv", "bodyId,neurotransmitter", ["1,acetylcholine"])
    with pytest.raises(
        ConnectomeError,
        match=r"nt\.csv: the transmitter table needs a transmitter column",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv")


def test_neuprint_conflicting_transmitters(tmp_path):
    folder = neuprint_files(tmp_path)
    write_csv(folder / "nt.csv", "type,nt_type", ["KC,acetylcholine", "PN,gaba", "KC,gaba"])
    with pytest.raises(
        ConnectomeError,
        match=r"nt\.csv: type 'KC' has transmitter 'acetylcholine' in row 1 and 'gaba' in row "
        r"3",
    ):
        load_neuprint(folder, transmitters=folder / "nt.csv")


# ------------------------------------------------------------------------------ edgelist
def edges(tmp_path: Path, rows: list[str], header: str = "pre,post,count,sign") -> Path:
    return write_csv(tmp_path / "edges.csv", header, rows)


def test_edgelist_needs_one_sign_source(tmp_path):
    path = edges(tmp_path, ["1,2,3,1"])
    with pytest.raises(ConnectomeError, match="needs exactly one source of signs.*got 0"):
        load_edgelist(path)
    with pytest.raises(ConnectomeError, match="got 2"):
        load_edgelist(path, sign="sign", signed_counts=True)


def test_edgelist_missing_file_and_column(tmp_path):
    with pytest.raises(ConnectomeError, match=r"nope\.csv: edge list not found"):
        load_edgelist(tmp_path / "nope.csv", signed_counts=True)
    path = edges(tmp_path, ["1,2,3,1"])
    with pytest.raises(
        ConnectomeError,
        match=r"edges\.csv: missing column\(s\) 'weight'; the file has 'pre', 'post', 'count', "
        r"'sign'",
    ):
        load_edgelist(path, count="weight", signed_counts=True)


def test_edgelist_bad_sign_value(tmp_path):
    path = edges(tmp_path, ["1,2,3,1", "2,1,3,2"])
    with pytest.raises(ConnectomeError, match=r"edges\.csv, row 2 \(line 3\): column 'sign' is 2"):
        load_edgelist(path, sign="sign")


def test_edgelist_negative_count_needs_signed_counts(tmp_path):
    path = edges(tmp_path, ["1,2,3,1", "2,1,-3,1"])
    with pytest.raises(ConnectomeError, match=r"row 2 \(line 3\): column 'count' is negative"):
        load_edgelist(path, sign="sign")
    assert load_edgelist(path, signed_counts=True).counts.tolist() == [3, -3]


def test_edgelist_nan_count_in_parquet(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"pre": [1, 2], "post": [2, 1], "count": [1.0, None]}), path)
    message = esc(path) + r", row 2: column 'count' is empty or NaN"
    with pytest.raises(ConnectomeError, match=message):
        load_edgelist(path, signed_counts=True)


def test_edgelist_unknown_id_with_neuron_table(tmp_path):
    path = edges(tmp_path, ["1,2,3,1", "2,3,1,1"])
    neurons = write_csv(tmp_path / "neurons.csv", "id,cell_type", ["1,A", "2,B"])
    with pytest.raises(
        ConnectomeError,
        match=r"edges\.csv, row 2 \(line 3\): post 3 is not in .*neurons\.csv",
    ):
        load_edgelist(path, sign="sign", neurons=neurons)
    conn = load_edgelist(path, sign="sign", neurons=neurons, allow_unknown_ids=True)
    assert conn.provenance.counts["unknown_ids_added"] == 1
    assert conn.neurons.column("cell_type").to_pylist() == ["A", "B", None]


def test_edgelist_duplicates_error(tmp_path):
    path = edges(tmp_path, ["1,2,3,1", "2,1,1,1", "1,2,1,1"])
    with pytest.raises(
        ConnectomeError,
        match=r"edges\.csv: rows 1 and 3 name the same pair \(pre=1, post=2\)",
    ):
        load_edgelist(path, sign="sign", duplicates="error")


def test_edgelist_sign_cancels(tmp_path):
    path = edges(tmp_path, ["1,2,3,1", "1,2,3,-1"])
    conn = load_edgelist(path, sign="sign")
    assert conn.n_connections == 0
    assert dict(conn.provenance.counts) == {
        "neurons_with_mixed_output_signs": 1,
        "pair_rows_merged": 1,
        "zero_sum_pairs_dropped": 1,
    }


# ------------------------------------------------------------------------------ celegans
def test_celegans_unknown_dataset():
    with pytest.raises(
        ConnectomeError,
        match=r"unknown C\. elegans dataset 'Cook2020'; known: Cook2019Herm",
    ):
        load_celegans("Cook2020")


def test_celegans_bad_options():
    with pytest.raises(ConnectomeError, match="cells='muscles'"):
        load_celegans("Varshney", cells="muscles")
    with pytest.raises(ConnectomeError, match="'Dopamine' is not a fast transmitter"):
        load_celegans("Varshney", inhibitory=("GABA", "Dopamine"))


def test_celegans_transmitter_table_missing(tmp_path):
    pytest.importorskip("cect")
    with pytest.raises(ConnectomeError, match=r"nt\.csv: transmitter table not found"):
        load_celegans("Varshney", transmitters=tmp_path / "nt.csv")
