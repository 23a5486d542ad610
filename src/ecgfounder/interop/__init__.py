"""Clinical interchange: our outputs in the standards hospitals take (HL7 FHIR R4, DICOM waveforms).

Imported on first use: ``pydicom`` only when a DICOM object is written."""

from .fhir import LOINC_MEASUREMENTS, record_bundle, snomed_code, write_bundles

__all__ = ["record_bundle", "write_bundles", "LOINC_MEASUREMENTS", "snomed_code", "write_dicom_ecg"]


def write_dicom_ecg(*args, **kwargs):  # type: ignore[no-untyped-def]
    """:func:`ecgfounder.interop.dicom.write_dicom_ecg` (imported when called)."""
    from .dicom import write_dicom_ecg as write

    return write(*args, **kwargs)
