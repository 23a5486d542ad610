"""CinC 2020/2021 header deviations (issue 30, item 1), each made from a real CinC 2021 record of
``../shared`` with its header rewritten the way one of the challenge's sources writes it.

Survey of the sources (CinC 2020 and 2021 training sets; what public readers and wfdb-python
issues report, see docs/reading.md):

* Georgia (``E*``, about 10,000 records): the record name carries the data file's suffix,
  ``E00009.mat 12 500 5000 05-May-2020 14:50:55``, signal format ``16+24``, gain ``1000/mV``,
  comments without a space (``#Age: 71``). wfdb-python: ``HeaderSyntaxError``.
* Every source of the 2020 release (CPSC ``A*``, CPSC-Extra ``Q*``, St Petersburg ``I*``, PTB
  ``S*``, PTB-XL ``HR*``, Georgia): the base date before the base time, with dashes
  (``05-Feb-2020 11:39:16``). wfdb-python: ``HeaderSyntaxError``.
* PTB-XL (``HR*``): units written ``mv``.
* Chapman-Shaoxing and Ningbo (``JS*``): a ``Dx`` list ending with a comma or holding an empty item
  (``164889003,,59118001,``).
* Several sources: ``Age: NaN``, ``Sex: NaN`` or ``Unknown``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ecgfounder import read_ecg


def _copy(data_dir: Path, name: str, folder: Path) -> tuple[Path, list[str]]:
    src = data_dir / "cinc2021-samples" / name
    shutil.copy(src.with_suffix(".mat"), folder / f"{name}.mat")
    return folder / f"{name}.hea", src.with_suffix(".hea").read_text().splitlines()


def _original(data_dir: Path, name: str):
    return read_ecg(data_dir / "cinc2021-samples" / f"{name}.hea")


def test_georgia_record_line_with_mat_suffix(data_dir, tmp_path):
    head, lines = _copy(data_dir, "E07500", tmp_path)
    lines[0] = "E07500.mat 12 500 5000 05-May-2020 14:50:55"
    lines = [ln.replace("16x1+24", "16+24").replace("1000.0(0)/mV", "1000/mV") for ln in lines]
    lines = [
        ln.replace("# Age:", "#Age:").replace("# Sex:", "#Sex:").replace("# Dx:", "#Dx:") for ln in lines
    ]
    head.write_text("\n".join(lines) + "\n")
    import wfdb

    with pytest.raises(Exception, match="record line"):  # what users hit before
        wfdb.rdheader(str(head.with_suffix("")))
    rec = read_ecg(head)
    want = _original(data_dir, "E07500")
    np.testing.assert_array_equal(rec.signal, want.signal)
    assert rec.leads == want.leads and rec.fs == 500.0 and rec.record_id == "E07500"
    assert rec.age == 78 and rec.sex == "M" and set(rec.codes) == set(want.codes) and rec.codes
    note = next(n for n in rec.notes if n.startswith("header repaired"))
    assert "record name 'E07500.mat' read as 'E07500'" in note and "05-May-2020 14:50:55" in note


def test_date_before_time_with_dashes(data_dir, tmp_path):
    head, lines = _copy(data_dir, "HR06000", tmp_path)
    lines[0] = "HR06000 12 500 5000 05-Feb-2020 11:39:16"
    head.write_text("\n".join(lines) + "\n")
    rec = read_ecg(head)
    np.testing.assert_array_equal(rec.signal, _original(data_dir, "HR06000").signal)
    assert any("05-Feb-2020 11:39:16" in n and "11:39:16 05/02/2020" in n for n in rec.notes)


def test_ptbxl_lower_case_mv_units(data_dir):
    """PTB-XL's ``1000.0(0)/mv``: read as millivolts, the same values as ``mV``."""
    head = data_dir / "cinc2021-samples" / "HR06000.hea"
    assert "/mv " in head.read_text()
    rec = read_ecg(head)
    assert rec.units == "mV" and 0.05 < float(np.nanmax(np.abs(rec.signal))) < 10


def test_dx_with_empty_items_and_nan_demographics(data_dir, tmp_path):
    head, lines = _copy(data_dir, "JS20000", tmp_path)
    lines = [
        (
            "# Dx: 164889003,,59118001,"
            if ln.startswith("# Dx")
            else "# Age: NaN"
            if ln.startswith("# Age")
            else "# Sex: NaN"
            if ln.startswith("# Sex")
            else ln
        )
        for ln in lines
    ]
    head.write_text("\n".join(lines) + "\n")
    rec = read_ecg(head)
    assert rec.codes == ("164889003", "59118001")
    assert rec.age is None and rec.sex is None


def test_cinc2021_layout_keeps_georgia_records(data_dir, tmp_path):
    """The ``cinc2021:`` training layout read its labels through wfdb-python and silently left out
    every record whose record line it refused: the whole Georgia part."""
    from ecgfounder.data.manifest import cinc2021_manifest

    for name in ("E07500", "E07501", "HR06000"):
        head, lines = _copy(data_dir, name, tmp_path)
        if name.startswith("E"):
            lines[0] = f"{name}.mat 12 500 5000 05-May-2020 14:50:55"
        head.write_text("\n".join(lines) + "\n")
    man = cinc2021_manifest(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert not man.dropped
    assert sorted(Path(p).stem for p in man.paths) == ["E07500", "E07501", "HR06000"]
    georgia = [i for i, p in enumerate(man.paths) if Path(p).stem == "E07500"][0]
    want = set(_original(data_dir, "E07500").codes)
    assert {lab for lab, v in zip(man.labels, man.y[georgia]) if v} == want
