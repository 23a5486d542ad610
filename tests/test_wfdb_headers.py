"""WFDB headers as public databases ship them, deviations included (each reported to wfdb-python or
a challenge's tracker), on minimal reproductions: read, with a note saying what was repaired."""

from __future__ import annotations

import numpy as np
import pytest

from ecgfounder import ECGInputError, read_ecg

SIG = (np.sin(np.arange(5000) / 20) * 1000).astype("<i2")


def _record(folder, header: str, data_name: str | None):
    name = header.split()[0].rpartition("/")[2]
    (folder / f"{name}.hea").write_text(header)
    if data_name:
        SIG.tofile(folder / data_name)
    return folder / f"{name}.hea"


CASES = {
    # wfdb-python #351 / #415: CinC 2020-2021 write the date first, with dashes
    "date before time (CinC 2021)": (
        "r 1 500 5000 05-May-2020 09:49:17\nr.dat 16 1000/mV 16 0 0 0 0 I\n",
        "r.dat",
        "read as '09:49:17 05/05/2020'",
    ),
    # wfdb-python #128: CinC 2017's ISO date
    "ISO date (CinC 2017)": (
        "r 1 500 5000 2014-05-08 05:05:15\nr.dat 16 1000/mV 16 0 0 0 0 I\n",
        "r.dat",
        "read as '05:05:15 08/05/2014'",
    ),
    # wfdb-python #307 / #415: Cerebral Perfusion gives only the year
    "year only (Cerebral Perfusion)": (
        "r 1 500 5000 2006\nr.dat 16 1000/mV 16 0 0 0 0 I\n",
        "r.dat",
        "'2006' read as 'absent'",
    ),
    # physionet #84: MGH/MF mgh025 has a three-digit year
    "truncated year (MGH/MF)": (
        "r 1 500 5000 10:00:00 01/01/199\nr.dat 16 1000/mV 16 0 0 0 0 I\n",
        "r.dat",
        "read as '10:00:00'",
    ),
    # wfdb-python #528: PTB-XL+ median beats name the file with a folder; the file sits beside
    "folder in the names (PTB-XL+)": (
        "ge/r 1 500 5000\nge/r.dat 16 1000/mV 16 0 0 0 0 I\n",
        "r.dat",
        "signal file 'ge/r.dat' read as 'r.dat'",
    ),
    # python-classifier-2021 #4: converted headers lost the extension of the signal file
    "signal file without extension (CinC 2021 tools)": (
        "r 1 500 5000\nr 16+24 1000/mV 16 0 0 0 0 I\n",
        "r.mat",
        "signal file 'r' read as 'r.mat'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_header_deviation_is_read_with_a_note(tmp_path, case):
    header, data, note = CASES[case]
    if data.endswith(".mat"):  # 16+24: a 24-byte MATLAB preamble before the samples
        (tmp_path / data).write_bytes(b"\0" * 24 + SIG.tobytes())
        path = tmp_path / "r.hea"
        path.write_text(header)
    else:
        path = _record(tmp_path, header, data)
    rec = read_ecg(path)
    np.testing.assert_allclose(rec.signal[0], SIG / 1000.0, atol=1e-6)
    assert rec.fs == 500 and any(n.startswith("header repaired:") and note in n for n in rec.notes), rec.notes


def test_multisegment_declaring_more_segments_than_listed(tmp_path):
    # mimic-code #791: MIMIC-III 3029208.hea declares 16 segments and lists 15
    for i, part in enumerate((SIG[:2500], SIG[2500:]), 1):
        (tmp_path / f"s{i}.hea").write_text(f"s{i} 1 500 2500\ns{i}.dat 16 1000/mV 16 0 0 0 0 I\n")
        part.tofile(tmp_path / f"s{i}.dat")
    (tmp_path / "m.hea").write_text("m/3 1 500 7500\ns1 2500\ns2 2500\n")
    rec = read_ecg(tmp_path / "m.hea")
    np.testing.assert_allclose(rec.signal[0], SIG / 1000.0, atol=1e-6)
    assert any("3 segments declared, 2 listed" in n for n in rec.notes)


def test_valid_headers_are_not_touched(data_dir):
    for path in (
        data_dir / "ludb" / "data" / "1.hea",
        data_dir / "wfdb-samples" / "100.hea",
        data_dir / "cinc2017-dev" / "A00001.hea",
    ):
        assert not any(n.startswith("header repaired") for n in read_ecg(path).notes), path


def test_header_without_its_signal_file_says_so(tmp_path):
    path = _record(tmp_path, "r 1 500 5000\nr.dat 16 1000/mV 16 0 0 0 0 I\n", None)
    with pytest.raises(ECGInputError, match=r"the signal file r.dat named by r.hea is missing"):
        read_ecg(path)
    # a folder that would lead outside is still refused, repaired or not
    (tmp_path / "x.hea").write_text("x 1 500 5000\n../../etc/x.dat 16 1000/mV 16 0 0 0 0 I\n")
    with pytest.raises(ECGInputError, match="refused"):
        read_ecg(tmp_path / "x.hea")
