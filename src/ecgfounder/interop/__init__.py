"""Clinical interchange: our outputs in the standards hospitals take (HL7 FHIR R4)."""

from .fhir import LOINC_MEASUREMENTS, record_bundle, snomed_code

__all__ = ["record_bundle", "LOINC_MEASUREMENTS", "snomed_code"]
