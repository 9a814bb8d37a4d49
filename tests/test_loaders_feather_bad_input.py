"""Bad input to the Feather loaders: every error names the file and the row, id or column.

Rows in messages are 1-based data rows. The files span several chunks (the fixture
``small_chunks`` reads 4 rows at a time), so a row number in a later chunk checks that
numbering carries across chunks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
from test_loaders_feather import (  # noqa: F401  (small_chunks is an autouse fixture)
    ANNOTATIONS,
    BANC_EDGES,
    FLAT_WEIGHTS,
    FW_ROWS,
    TRANSMITTERS,
    WEIGHTS,
    E,
    banc_id,
    flywire_columns,
    small_chunks,
    write_banc,
    write_feather,
    write_flat,
    write_flywire_feather,
)

from brainsim.connectome import ConnectomeError
from brainsim.connectome._banc import load_banc
from brainsim.connectome._flywire_feather import load_flywire_feather
from brainsim.connectome._neuprint_flat import load_neuprint_flat

FW_FILE = "proofread_connections_783.feather"


def esc(path: Path) -> str:
    return re.escape(str(path))


def replaced(cols: dict, name: str, row: int, value, type_=None) -> dict:
    """``cols`` with 0-based ``row`` of column ``name`` set to ``value``."""
    values = list(cols[name].to_pylist() if isinstance(cols[name], pa.Array) else cols[name])
    values[row] = value
    return {**cols, name: pa.array(values, type_) if type_ is not None else values}


# ------------------------------------------------------------------------------ flywire_feather
def test_flywire_feather_no_file(tmp_path):
    with pytest.raises(ConnectomeError, match=r"no connections file found .*proofread_conn"):
        load_flywire_feather(tmp_path)
    with pytest.raises(ConnectomeError, match=r"no such file or folder"):
        load_flywire_feather(tmp_path / "nowhere")


def test_flywire_feather_two_connection_files(tmp_path):
    folder = write_flywire_feather(tmp_path, annotations=False)
    write_feather(folder / "proofread_connections_630.feather", flywire_columns())
    with pytest.raises(ConnectomeError, match=r"several files could be the connections file"):
        load_flywire_feather(folder)
    assert load_flywire_feather(folder / FW_FILE).n_synapses == 32


def test_flywire_feather_missing_column(tmp_path):
    cols = flywire_columns()
    del cols["glut_avg"]
    write_feather(tmp_path / FW_FILE, cols)
    with pytest.raises(
        ConnectomeError, match=esc(tmp_path / FW_FILE) + r": missing column\(s\) 'glut_avg'"
    ):
        load_flywire_feather(tmp_path)


@pytest.mark.parametrize(
    "name, row, value, type_, message",
    [
        ("syn_count", 8, None, pa.int64(), r"row 9: column 'syn_count' is empty or NaN"),
        ("syn_count", 8, float("nan"), None, r"row 9: column 'syn_count' is nan"),
        ("syn_count", 8, -1, None, r"row 9: column 'syn_count' is negative \(-1\)"),
        ("syn_count", 8, 1.5, None, r"row 9: column 'syn_count' is 1\.5, not a whole number"),
        ("gaba_avg", 10, 1.7, pa.float32(), r"row 11: column 'gaba_avg' is 1\.7.*not a prob"),
        ("pre_pt_root_id", 10, None, pa.int64(), r"row 11: column 'pre_pt_root_id' is empty"),
    ],
)
def test_flywire_feather_bad_values(tmp_path, name, row, value, type_, message):
    cols = flywire_columns()
    if name == "syn_count" and isinstance(value, float):
        cols[name] = [float(v) for v in cols[name]]
    write_flywire_feather(tmp_path, annotations=False, **replaced(cols, name, row, value, type_))
    with pytest.raises(ConnectomeError, match=esc(tmp_path / FW_FILE) + ", " + message):
        load_flywire_feather(tmp_path)


def test_flywire_feather_ids_as_text_that_do_not_parse(tmp_path):
    cols = flywire_columns()
    cols["post_pt_root_id"] = [str(v) for v in cols["post_pt_root_id"]]
    cols = replaced(cols, "post_pt_root_id", 7, "7e3")
    write_flywire_feather(tmp_path, annotations=False, **cols)
    with pytest.raises(
        ConnectomeError,
        match=esc(tmp_path / FW_FILE) + r", row 8: column 'post_pt_root_id' is '7e3', not a neur",
    ):
        load_flywire_feather(tmp_path)


def test_flywire_feather_float_ids(tmp_path):
    cols = flywire_columns()
    cols["pre_pt_root_id"] = [float(v) for v in cols["pre_pt_root_id"]]
    write_flywire_feather(tmp_path, annotations=False, **cols)
    with pytest.raises(ConnectomeError, match=r"'pre_pt_root_id' holds floating-point numbers"):
        load_flywire_feather(tmp_path)


def test_flywire_feather_unknown_id(tmp_path):
    folder = write_flywire_feather(tmp_path)
    path = folder / "Supplemental_file1_neuron_annotations.tsv"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")  # drop E
    with pytest.raises(
        ConnectomeError,
        match=esc(folder / FW_FILE) + rf", row 11: post_pt_root_id {E} is not in .*annotations"
        r"\.tsv; use the annotation table of the same release .*allow_unknown_ids=True",
    ):
        load_flywire_feather(folder)


def test_flywire_feather_duplicate_row_error_option(tmp_path):
    rows = [*FW_ROWS, FW_ROWS[3]]
    folder = write_flywire_feather(tmp_path, rows, annotations=False)
    assert load_flywire_feather(folder).provenance.counts["duplicate_rows_merged"] == 1
    with pytest.raises(
        ConnectomeError,
        match=r"rows 4 and 13 name the same pair and neuropil \(pre_pt_root_id=\d+, "
        r"post_pt_root_id=\d+, neuropil=LH_L\)",
    ):
        load_flywire_feather(folder, duplicates="error")


def test_flywire_feather_annotation_id_twice(tmp_path):
    folder = write_flywire_feather(tmp_path)
    path = folder / "Supplemental_file1_neuron_annotations.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(
        ConnectomeError,
        match=r"annotations\.tsv: id \d+ appears twice in column 'root_id' \(rows 1 and 6\)",
    ):
        load_flywire_feather(folder)


def test_flywire_feather_bad_options(tmp_path):
    folder = write_flywire_feather(tmp_path, annotations=False)
    with pytest.raises(ConnectomeError, match="sign_rule='given' for format 'flywire_feather'"):
        load_flywire_feather(folder, sign_rule="given")
    with pytest.raises(ConnectomeError, match="duplicates='drop'"):
        load_flywire_feather(folder, duplicates="drop")


def test_flywire_feather_not_a_feather_file(tmp_path):
    (tmp_path / FW_FILE).write_text("pre_pt_root_id,post_pt_root_id\n1,2\n")
    with pytest.raises(ConnectomeError, match=r"cannot read as a Feather v2 \(Arrow IPC\) file"):
        load_flywire_feather(tmp_path)


# ------------------------------------------------------------------------------ neuprint_flat
def test_neuprint_flat_missing_files(tmp_path):
    folder = write_flat(tmp_path)
    (folder / TRANSMITTERS).unlink()
    with pytest.raises(ConnectomeError, match=r"no body neurotransmitter table found"):
        load_neuprint_flat(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(ConnectomeError, match=r"no weights file found"):
        load_neuprint_flat(folder)


def test_neuprint_flat_two_weights_files(tmp_path):
    folder = write_flat(tmp_path)
    traced = "connectome-weights-male-cns-v1.0-minconf-0.5-traced-only.feather"
    (folder / traced).write_bytes((folder / WEIGHTS).read_bytes())
    with pytest.raises(ConnectomeError, match=r"several files could be the weights file"):
        load_neuprint_flat(folder)
    assert load_neuprint_flat(folder / traced).n_synapses == 20


def test_neuprint_flat_missing_column(tmp_path):
    folder = write_flat(tmp_path)
    write_feather(folder / WEIGHTS, {"body_pre": [10], "body_post": [20], "w": [1]})
    with pytest.raises(
        ConnectomeError, match=esc(folder / WEIGHTS) + r": missing column\(s\) 'weight'"
    ):
        load_neuprint_flat(folder)


@pytest.mark.parametrize(
    "name, row, value, type_, message",
    [
        ("weight", 8, None, pa.int64(), r"row 9: column 'weight' is empty or NaN"),
        ("weight", 8, -6, None, r"row 9: column 'weight' is negative \(-6\)"),
        ("body_post", 9, None, pa.int64(), r"row 10: column 'body_post' is empty"),
    ],
)
def test_neuprint_flat_bad_values(tmp_path, name, row, value, type_, message):
    cols = {
        "body_pre": [w[0] for w in FLAT_WEIGHTS],
        "body_post": [w[1] for w in FLAT_WEIGHTS],
        "weight": [w[2] for w in FLAT_WEIGHTS],
    }
    folder = write_flat(tmp_path, **replaced(cols, name, row, value, type_))
    with pytest.raises(ConnectomeError, match=esc(folder / WEIGHTS) + ", " + message):
        load_neuprint_flat(folder)


def test_neuprint_flat_nan_weight(tmp_path):
    folder = write_flat(tmp_path, weight=[float(w[2]) for w in FLAT_WEIGHTS[:-1]] + [float("nan")])
    with pytest.raises(ConnectomeError, match=r"row 10: column 'weight' is nan"):
        load_neuprint_flat(folder)


def test_neuprint_flat_ids_as_text(tmp_path):
    folder = write_flat(tmp_path, body_pre=[str(w[0]) for w in FLAT_WEIGHTS[:-1]] + ["3O"])
    with pytest.raises(ConnectomeError, match=r"row 10: column 'body_pre' is '3O', not a neuron"):
        load_neuprint_flat(folder)


def test_neuprint_flat_non_neuron_error_option(tmp_path):
    folder = write_flat(tmp_path)
    with pytest.raises(
        ConnectomeError,
        match=esc(folder / WEIGHTS) + r", row 4: body_post 40 is not a neuron \(no row with a "
        r"superclass in .*body-annotations.*non_neurons='drop'",
    ):
        load_neuprint_flat(folder, non_neurons="error")


def test_neuprint_flat_duplicates_error(tmp_path):
    folder = write_flat(tmp_path)
    with pytest.raises(
        ConnectomeError,
        match=r"rows 1 and 7 name the same pair \(body_pre=10, body_post=20\)",
    ):
        load_neuprint_flat(folder, duplicates="error")


def test_neuprint_flat_annotations_and_transmitters(tmp_path):
    folder = write_flat(tmp_path)
    nts = {"body": [10, 20, 10], "consensus_nt": ["gaba", "gaba", "acetylcholine"]}
    write_feather(folder / TRANSMITTERS, nts)
    with pytest.raises(
        ConnectomeError,
        match=r"neurotransmitters-male-cns-v1\.0\.feather: body 10 has consensus_nt 'gaba' in "
        r"row 1 and 'acetylcholine' in row 3",
    ):
        load_neuprint_flat(folder)
    write_feather(folder / TRANSMITTERS, {"body": [10, 20], "consensus_nt": ["gaba", "gaba"]})
    with pytest.raises(ConnectomeError, match=r"neuron 30 has output synapses but no transm"):
        load_neuprint_flat(folder, missing_transmitter="error")
    write_feather(folder / ANNOTATIONS, {"bodyId": [10, 20, 10], "superclass": ["a", "b", "c"]})
    with pytest.raises(
        ConnectomeError, match=r"annotations.*: id 10 appears twice in column 'bodyId'"
    ):
        load_neuprint_flat(folder)


def test_neuprint_flat_bad_options(tmp_path):
    folder = write_flat(tmp_path)
    with pytest.raises(ConnectomeError, match="transmitter_column='nt'"):
        load_neuprint_flat(folder, transmitter_column="nt")
    with pytest.raises(ConnectomeError, match="non_neurons='keep'"):
        load_neuprint_flat(folder, non_neurons="keep")


# ------------------------------------------------------------------------------ banc
BANC_EDGE_FILE = "banc_888_edgelist_simple_v3.feather"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("72057594100000001x", "is '72057594100000001x', not a neuron id"),
        ("", "is '', not a neuron id"),
        (" 720575941000000010", "is ' 720575941000000010', not a neuron id"),
        ("-720575941000000010", "is '-720575941000000010', not a neuron id"),
        (None, "is empty, not a neuron id"),
        ("99999999999999999999", "is '99999999999999999999', not a neuron id"),
        ("9999999999999999999", "is '9999999999999999999', which exceeds the largest int64"),
    ],
)
def test_banc_string_ids_that_do_not_parse(tmp_path, bad, message):
    post = [banc_id(e[1]) for e in BANC_EDGES]
    post[5] = bad
    folder = write_banc(tmp_path, post=pa.array(post, pa.string()))
    with pytest.raises(
        ConnectomeError,
        match=esc(folder / BANC_EDGE_FILE) + r", row 6: column 'post' " + re.escape(message),
    ):
        load_banc(folder)


def test_banc_meta_id_that_does_not_parse(tmp_path):
    folder = write_banc(tmp_path)
    meta = folder / "banc_888_meta.feather"
    import pyarrow.feather as pf

    table = pf.read_table(meta)
    ids = table.column("banc_888_id").to_pylist()
    ids[2] = "7.2e17"
    write_feather(meta, {**{c: table.column(c) for c in table.column_names}, "banc_888_id": ids})
    with pytest.raises(
        ConnectomeError, match=esc(meta) + r", row 3: column 'banc_888_id' is '7\.2e17'"
    ):
        load_banc(folder)


@pytest.mark.parametrize(
    "counts, message",
    [
        ([52, 4, 3, 1, 2, 0, None], r"row 7: column 'count' is empty or NaN"),
        ([52.0, 4, 3, 1, 2, 0, float("nan")], r"row 7: column 'count' is nan"),
        ([52, 4, 3, -1, 2, 0, 5], r"row 4: column 'count' is negative \(-1\)"),
    ],
)
def test_banc_bad_counts(tmp_path, counts, message):
    folder = write_banc(tmp_path, count=counts)
    with pytest.raises(ConnectomeError, match=esc(folder / BANC_EDGE_FILE) + ", " + message):
        load_banc(folder)


def test_banc_unknown_id(tmp_path):
    post = [banc_id(e[1]) for e in BANC_EDGES]
    post[6] = banc_id(77)
    folder = write_banc(tmp_path, post=post)
    with pytest.raises(
        ConnectomeError,
        match=esc(folder / BANC_EDGE_FILE) + rf", row 7: post {banc_id(77)} is not in "
        r".*banc_888_meta\.feather \(column 'banc_888_id'\).*allow_unknown_ids=True",
    ):
        load_banc(folder)
    conn = load_banc(folder, allow_unknown_ids=True)
    assert conn.provenance.counts["unknown_ids_added"] == 1
    assert conn.n_neurons == 5


def test_banc_duplicates_and_missing_column(tmp_path):
    folder = write_banc(tmp_path)
    with pytest.raises(
        ConnectomeError,
        match=rf"rows 1 and 4 name the same pair \(pre={banc_id(30)}, post={banc_id(10)}\)",
    ):
        load_banc(folder, duplicates="error")
    write_feather(folder / BANC_EDGE_FILE, {"pre": [banc_id(10)], "post": [banc_id(20)]})
    with pytest.raises(
        ConnectomeError, match=esc(folder / BANC_EDGE_FILE) + r": missing column\(s\) 'count'"
    ):
        load_banc(folder)


def test_banc_meta_id_twice_and_missing_transmitter_error(tmp_path):
    folder = write_banc(tmp_path)
    with pytest.raises(ConnectomeError, match=rf"neuron {banc_id(20)} has output synapses but no"):
        load_banc(folder, missing_transmitter="error")
    write_feather(folder / "banc_888_meta.feather", {"banc_888_id": [banc_id(10), banc_id(10)]})
    with pytest.raises(ConnectomeError, match=r"appears twice in column 'banc_888_id' \(rows 1"):
        load_banc(folder)


def test_banc_two_edge_lists(tmp_path):
    folder = write_banc(tmp_path)
    v2 = folder / "banc_888_edgelist_simple_v2.feather"
    v2.write_bytes((folder / BANC_EDGE_FILE).read_bytes())
    with pytest.raises(ConnectomeError, match=r"several files could be the edge list"):
        load_banc(folder)
    assert load_banc(v2).n_synapses == 67
