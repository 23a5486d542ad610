"""Small hostile files reproducing the findings of the security probe (issue 13).

Each builder writes a few kilobytes into ``folder`` and returns the path. The files declare far
more than they hold (deflated or sparse storage), point outside themselves (HDF5 links and
external storage, WFDB paths), or are built to burn CPU in a parser. Used by ``test_security.py``
in-process, in a memory-capped subprocess, and through the HTTP service.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

SECRET = b"root:x:0:0:SECRET-MARKER:/root:/bin/bash\n" * 200


def secret_file(folder: Path) -> Path:
    p = folder / "secret.txt"
    p.write_bytes(SECRET)
    return p


def h5_external_storage(folder: Path, target: Path) -> Path:
    import h5py

    p = folder / "external.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("tracings", (1, 100, 12), dtype="<i2", external=[(str(target), 0, 2400)])
    return p


def h5_external_link(folder: Path, target: Path) -> Path:
    import h5py

    other = folder / "other_ecg.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("tracings", data=np.ones((1, 4096, 12), dtype="<f4"))
    p = folder / "extlink.h5"
    with h5py.File(p, "w") as f:
        f["tracings"] = h5py.ExternalLink(str(other), "/tracings")
    return p


def h5_virtual(folder: Path, target: Path) -> Path:
    import h5py

    other = folder / "source_ecg.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.ones((1, 4096, 12), dtype="<f4"))
    layout = h5py.VirtualLayout(shape=(1, 4096, 12), dtype="<f4")
    layout[:] = h5py.VirtualSource(str(other), "data", shape=(1, 4096, 12))
    p = folder / "virtual.h5"
    with h5py.File(p, "w") as f:
        f.create_virtual_dataset("tracings", layout)
    return p


def h5_soft_link(folder: Path, target: Path) -> Path:
    import h5py

    p = folder / "softlink.h5"
    with h5py.File(p, "w") as f:
        f["ext"] = h5py.ExternalLink(str(target), "/")
        f["tracings"] = h5py.SoftLink("/ext/tracings")
    return p


def h5_fill_value_bomb(folder: Path) -> Path:
    """1 exam declared 80 million samples long, never written: a few KB on disk."""
    import h5py

    p = folder / "fill.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("tracings", (1, 80_000_000, 12), dtype="<f4", chunks=(1, 4096, 12), fillvalue=1.0)
    return p


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npz_bomb(folder: Path) -> Path:
    """A deflated member whose header declares 12 x 100 million float64 (9.6 GB) of zeros."""
    p = folder / "bomb.npz"
    zeros = b"\0" * (4 << 20)
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("signal.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header((12, 100_000_000)))
            for _ in range(4):
                fh.write(zeros)
        zf.writestr("fs.npy", _npy_header((), "<f8") + struct.pack("<d", 500.0))
    return p


def npy_declared_huge(folder: Path) -> Path:
    p = folder / "huge.npy"
    p.write_bytes(_npy_header((12, 500_000_000), "<f4") + b"\0" * 4096)
    return p


def dicom_deflate_bomb(folder: Path, inflated_mb: int = 24) -> Path:
    """A deflated DICOM data set whose one OB element inflates to ``inflated_mb`` MB of zeros."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.9.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.add_new((0x0009, 0x0010), "LO", "bomb")
    ds.add_new((0x0009, 0x1000), "OB", b"\0" * (inflated_mb << 20))
    p = folder / "bomb.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p


def wfdb_many_signals(folder: Path, n: int = 100_000) -> Path:
    """A 2.6 MB header declaring ``n`` signals (wfdb-python parses it for minutes)."""
    lines = [f"many {n} 500 5000"] + [f"many.dat 16 200 16 0 0 0 0 s{i}" for i in range(n)]
    (folder / "many.hea").write_text("\n".join(lines) + "\n")
    (folder / "many.dat").write_bytes(b"\0" * 64)
    return folder / "many.hea"


def wfdb_path_escape(folder: Path, target: Path) -> Path:
    """A header whose signal file is another file on the machine."""
    rel = Path("..") / ".." / target.relative_to(target.anchor)
    (folder / "escape.hea").write_text(f"escape 1 500 100\n{rel} 16 200 16 0 0 0 0 I\n")
    return folder / "escape.hea"


def wfdb_segment_escape(folder: Path) -> Path:
    (folder / "multi.hea").write_text("multi/2 1 500 10000\n../../etc/passwd 5000\n~ 5000\n")
    return folder / "multi.hea"


def wfdb_declared_huge(folder: Path) -> Path:
    (folder / "long.hea").write_text(
        "long 12 500 900000000\n" + "".join(f"long.dat 16 200 16 0 0 0 0 L{i}\n" for i in range(12))
    )
    (folder / "long.dat").write_bytes(b"\0" * 4800)
    return folder / "long.hea"


def csv_million_columns(folder: Path, columns: int = 1_000_000) -> Path:
    p = folder / "wide.csv"
    p.write_bytes(b",".join([b"1"] * columns) + b"\n" + b",".join([b"2"] * columns) + b"\n")
    return p


def hl7_many_leads(folder: Path, n: int = 2000) -> Path:
    seqs = "".join(
        f'<component><sequence><code code="MDC_ECG_LEAD_X{i}"/><value><digits>1 2 3</digits>'
        f"</value></sequence></component>"
        for i in range(n)
    )
    xml = (
        '<AnnotatedECG xmlns="urn:hl7-org:v3"><component><series><component><sequenceSet>'
        '<component><sequence><code code="TIME_ABSOLUTE"/><value><increment value="0.002" unit="s"/>'
        f"</value></sequence></component>{seqs}</sequenceSet></component></series></component></AnnotatedECG>"
    )
    p = folder / "many.xml"
    p.write_text(xml)
    return p


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_encrypted_flag() -> bytes:
    """A zip whose member has the 'encrypted' flag bit set (zipfile refuses to open it)."""
    raw = bytearray(zip_of({"a.csv": b"I\n1\n2\n"}, zipfile.ZIP_STORED))
    # general purpose flag: local header offset 6, central directory entry offset 8
    raw[6] |= 1
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 8] |= 1
    return bytes(raw)


def zip_unsupported_method() -> bytes:
    raw = bytearray(zip_of({"a.csv": b"I\n1\n2\n"}, zipfile.ZIP_STORED))
    raw[8:10] = struct.pack("<H", 99)  # local header: compression method
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 10 : cd + 12] = struct.pack("<H", 99)
    return bytes(raw)


def deflated_zeros(n_bytes: int) -> bytes:
    c = zlib.compressobj(9)
    block = b"0" * (1 << 20)
    out = [c.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(out) + c.flush()


# --------------------------------------------------------------------------- CPU bombs (issue 29)


def muse_huge_exponent(folder: Path, exponent: int = 100_000_000) -> Path:
    """A 227-byte MUSE XML whose sampling rate is ``SampleBase * 10 ** SampleExponent``: Python
    computes 10**100000000 exactly (minutes of CPU) unless the exponent is range-checked first."""
    lead = "AAABAAIA"  # three int16 samples, base64
    xml = (
        f"<RestingECG><Waveform><WaveformType>Rhythm</WaveformType><SampleBase>500</SampleBase>"
        f"<SampleExponent>{exponent}</SampleExponent><LeadData><LeadID>I</LeadID>"
        f"<WaveFormData>{lead}</WaveFormData></LeadData></Waveform></RestingECG>"
    )
    p = folder / "exponent.xml"
    p.write_text(xml)
    return p


def csv_spaced_metadata(folder: Path, spaces: int = 200_000) -> Path:
    """A metadata line ``a:x<spaces>y`` (a lazy group before ``\\s*$`` backtracks quadratically)."""
    p = folder / "spaced.csv"
    p.write_text("a:x" + " " * spaces + "y\n1\n2\n3\n")
    return p


def csv_open_brackets(folder: Path, brackets: int = 30_000) -> Path:
    """A header cell ``x((((...`` (a unit-in-name pattern with nested quantifiers backtracks)."""
    p = folder / "brackets.csv"
    p.write_text("x" + "(" * brackets + "\n1\n2\n3\n")
    return p


def h5_wide_chunks(folder: Path, samples: int = 200_000, written: int = 0) -> Path:
    """A CODE-15 layout file of 1000 exams whose chunks are (1000, 2000, 12) float32 (96 MB each):
    reading one exam decompresses every chunk along its samples. ``written`` chunks of exam block 0
    are stored (the same deflated zeros, about 93 KB each; 100 of them make the 11 MB file that held
    a parse worker for 34 s); the rest are fill values. With ``written=0`` the file is 2 KB."""
    import h5py

    p = folder / "chunks.h5"
    chunk = (1000, 2000, 12)
    with h5py.File(p, "w") as f:
        ds = f.create_dataset(
            "tracings", shape=(1000, samples, 12), dtype="<f4", chunks=chunk, compression="gzip"
        )
        if written:
            zeros = zlib.compress(bytes(int(np.prod(chunk)) * 4), 9)
            for k in range(min(written, -(-samples // chunk[1]))):
                ds.id.write_direct_chunk((0, k * chunk[1], 0), zeros)
    return p


def wfdb_samples_per_frame(folder: Path, frames: int = 200_000, spf: int = 500) -> Path:
    """A header ``r.dat 16x500 ...`` with ``frames`` frames: frames x spf values under a budget that
    only counts frames."""
    (folder / "r.hea").write_text(f"r 1 500 {frames}\nr.dat 16x{spf} 200 16 0 0 0 0 I\n")
    with open(folder / "r.dat", "wb") as fh:  # sparse: the size the header implies, no disk used
        fh.truncate(frames * spf * 2)
    return folder / "r.hea"
