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
    (folder / "long.hea").write_text("long 12 500 900000000\n" + "".join(
        f"long.dat 16 200 16 0 0 0 0 L{i}\n" for i in range(12)))
    (folder / "long.dat").write_bytes(b"\0" * 4800)
    return folder / "long.hea"


def csv_million_columns(folder: Path, columns: int = 1_000_000) -> Path:
    p = folder / "wide.csv"
    p.write_bytes(b",".join([b"1"] * columns) + b"\n" + b",".join([b"2"] * columns) + b"\n")
    return p


def hl7_many_leads(folder: Path, n: int = 2000) -> Path:
    seqs = "".join(f'<component><sequence><code code="MDC_ECG_LEAD_X{i}"/><value><digits>1 2 3</digits>'
                   f'</value></sequence></component>' for i in range(n))
    xml = ('<AnnotatedECG xmlns="urn:hl7-org:v3"><component><series><component><sequenceSet>'
           '<component><sequence><code code="TIME_ABSOLUTE"/><value><increment value="0.002" unit="s"/>'
           f'</value></sequence></component>{seqs}</sequenceSet></component></series></component></AnnotatedECG>')
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
    raw[cd + 10:cd + 12] = struct.pack("<H", 99)
    return bytes(raw)


def deflated_zeros(n_bytes: int) -> bytes:
    c = zlib.compressobj(9)
    block = b"0" * (1 << 20)
    out = [c.compress(block) for _ in range(n_bytes >> 20)]
    return b"".join(out) + c.flush()
