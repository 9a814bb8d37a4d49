"""brainsim._arrow: numpy <-> Arrow through buffers, checked against pyarrow's own paths."""

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from brainsim._arrow import column, read_parquet, rows_table, strings, values


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_column_round_trip(dtype):
    x = (np.arange(-5, 7) * 3).astype(dtype)
    arr = column(x)
    assert arr.type == pa.from_numpy_dtype(np.dtype(dtype))
    assert arr.to_pylist() == x.tolist()
    back = values(arr)
    assert back.dtype == x.dtype and np.array_equal(back, x)
    assert not back.flags.writeable  # (a view of the Arrow buffer)


@pytest.mark.parametrize(
    "typ", [pa.int8(), pa.uint16(), pa.int32(), pa.uint64(), pa.float32(), pa.bool_()]
)
def test_values_of_sliced_and_chunked_columns(typ):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 2 if typ == pa.bool_() else 100, 37).tolist()
    if typ == pa.bool_():
        raw = [bool(v) for v in raw]
    arr = pa.array(raw, typ)
    # offsets that are not multiples of 8 (booleans are bits) and several chunks
    chunked = pa.chunked_array([arr.slice(3, 11), arr.slice(14, 0), arr.slice(14, 23)])
    expect = np.asarray(raw[3:37])
    got = values(chunked)
    assert got.dtype == arr.to_numpy(zero_copy_only=False).dtype
    assert np.array_equal(got, expect)
    assert np.array_equal(values(arr.slice(5, 9)), np.asarray(raw[5:14]))
    assert values(arr.slice(0, 0)).size == 0


def test_values_with_nulls_and_other_types_take_pyarrow_path():
    a = pa.array([1.5, None, 3.0])
    got = values(a)
    assert got[0] == 1.5 and np.isnan(got[1]) and got[2] == 3.0
    s = pa.array(["x", "y"])
    assert values(s).tolist() == ["x", "y"]


def test_strings_and_rows_table():
    assert strings(["ab", "", "ünï"]).to_pylist() == ["ab", "", "ünï"]
    rows = [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": 1, "c": "yz"}]
    t = rows_table(rows)
    assert t.schema.types == [pa.int64(), pa.float64(), pa.string()]
    assert t.to_pylist() == [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": 1.0, "c": "yz"}]
    mixed = [{"a": 1}, {"a": "s"}]
    with pytest.raises(pa.ArrowInvalid):
        rows_table(mixed)  # (pyarrow's from_pylist refuses mixed types too)


def test_read_parquet_matches_read_table_filters(tmp_path):
    rng = np.random.default_rng(1)
    n = 5000
    t = pa.table(
        {
            "condition": rng.integers(0, 3, n).astype(np.int32),
            "trial": rng.integers(0, 4, n).astype(np.int32),
            "t_ms": rng.random(n),
            "neuron_id": rng.integers(0, 10**12, n),
        }
    )
    path = tmp_path / "s.parquet"
    pq.write_table(t, path, row_group_size=700)
    got = read_parquet(path, ["t_ms", "neuron_id"], {"condition": 2, "trial": 1})
    ref = pq.read_table(
        path, columns=["t_ms", "neuron_id"], filters=[("condition", "=", 2), ("trial", "=", 1)]
    )
    assert got.column_names == ["t_ms", "neuron_id"]
    assert got.equals(ref) and 0 < got.num_rows < n
    assert read_parquet(path).equals(pq.read_table(path))
    assert read_parquet(path, where={"trial": 9}).num_rows == 0
    assert read_parquet(path, ["t_ms"], where={"trial": 9}).column_names == ["t_ms"]
    with pytest.raises(TypeError, match="no integer column 't_ms'"):
        read_parquet(path, where={"t_ms": 1})


def test_read_parquet_skips_row_groups_by_their_statistics(tmp_path, monkeypatch):
    """Rows sorted by trial (as results are written): one trial's rows come from the row
    groups that can hold them, and only those are read."""
    n = 4000
    t = pa.table({"trial": np.repeat(np.arange(8), n // 8).astype(np.int32), "x": np.arange(n)})
    path = tmp_path / "sorted.parquet"
    pq.write_table(t, path, row_group_size=500)
    read = []
    original = pq.ParquetFile.read_row_groups

    def spy(self, groups, *a, **k):
        read.extend(groups)
        return original(self, groups, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    got = read_parquet(path, ["x"], {"trial": 3})
    assert values(got["x"]).tolist() == list(range(1500, 2000))
    assert read == [3]


def test_no_pandas_import_on_these_paths(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from brainsim._arrow import column, read_parquet, table, values\n"
        "import pyarrow.parquet as pq\n"
        f"p = {str(tmp_path / 'x.parquet')!r}\n"
        "pq.write_table(table({'a': column(np.arange(9)), 'b': column(np.ones(9))}), p)\n"
        "t = read_parquet(p, ['b'], {'a': 3})\n"
        "assert values(t['b']).tolist() == [1.0]\n"
        "assert read_parquet(p, ['b'], {'a': 99}).num_rows == 0\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
