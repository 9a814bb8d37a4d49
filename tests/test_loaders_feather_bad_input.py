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
    FW_ROWS,
    E,
    flywire_columns,
    small_chunks,
    write_feather,
    write_flywire_feather,
)

from brainsim.connectome import ConnectomeError
from brainsim.connectome._flywire_feather import load_flywire_feather

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
