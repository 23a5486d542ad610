"""Registry of named models, in the spirit of timm's pretrained configs.

Each :class:`ModelEntry` says how to build the network (an architecture preset plus overrides), where
its weights come from (a Hugging Face hub file or a file shipped in the package), what input it
expects (:class:`~ecgfounder.contract.InputContract`), what its outputs mean (label names), and under
which licence and citation it may be used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract import STANDARD_12_LEADS, InputContract
from .config import get_preset
from .labels import ecgfounder_labels
from .outputs import AGGREGATES

__all__ = [
    "WeightSource",
    "ModelEntry",
    "register_model",
    "unregister_model",
    "get_model_entry",
    "list_models",
    "is_registered",
    "normalize_name",
]


@dataclass(frozen=True)
class WeightSource:
    """Where a registered model's weights live.

    Either ``hub_repo`` + ``filename`` (downloaded with ``huggingface_hub``, cached, ``revision``
    pinned when given), or ``package_file`` (a path relative to the ``ecgfounder`` package).
    ``format`` is ``"official"`` (upstream ``{'state_dict': ...}`` pickle) or ``"ecgfounder"``
    (our safetensors with metadata).
    """

    filename: str
    hub_repo: str | None = None
    revision: str | None = None
    package_file: str | None = None
    format: str = "official"
    sha256: str | None = None

    def describe(self) -> str:
        if self.package_file:
            return f"package file ecgfounder/{self.package_file}"
        rev = f"@{self.revision}" if self.revision else ""
        return f"hf://{self.hub_repo}{rev}/{self.filename}"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. ``arch``: the preset name (``base``, ``tiny``...); ``architecture``: the
    network family in :mod:`ecgfounder.models.architectures` (``net1d``, ``delineator-unet``),
    whose config class ``config`` is."""

    name: str
    arch: str
    config: Any
    contract: InputContract
    labels: tuple[str, ...]
    weights: WeightSource | None = None
    license: str = "unspecified"
    citation: str = ""
    description: str = ""
    thresholds: tuple[float, ...] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    #: multilabel (sigmoid), multiclass (softmax) or regression
    task: str = "multilabel"
    #: how a record's window outputs are combined (``mean``, ``max``, ``logit``; None: mean)
    aggregate: str | None = None
    #: the network family (:func:`~ecgfounder.models.architectures.get_architecture`)
    architecture: str = "net1d"
    #: the mean output (probabilities) on held-out windows of the training domain: the label prior
    #: the model's outputs carry on new records of that domain, used by unsupervised label-shift
    #: correction (``adapt --method prior``) without the training data
    output_prior: tuple[float, ...] | None = None
    #: ``monitor``'s episode rules for this model (fields of ``ecgfounder.monitor.EpisodeRules``),
    #: chosen on validation records by ``benchmarks/tune_monitor_rules.py``; None: the defaults.
    #: Used only when the model is named by this entry, never for a model trained from it
    episode_rules: Mapping[str, float] | None = None
    #: where ``episode_rules`` came from, said in the monitor's summary
    episode_rules_from: str = ""

    def __post_init__(self) -> None:
        if len(self.labels) != self.config.n_classes:
            raise ValueError(
                f"model {self.name!r}: {len(self.labels)} labels for {self.config.n_classes} outputs"
            )
        if len(self.contract.leads) != self.config.in_channels:
            raise ValueError(
                f"model {self.name!r}: contract has {len(self.contract.leads)} leads, "
                f"architecture {self.config.in_channels} input channels"
            )
        if self.aggregate is not None and self.aggregate not in AGGREGATES:
            raise ValueError(
                f"model {self.name!r}: aggregate {self.aggregate!r} is not one of {', '.join(AGGREGATES)}"
            )
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ValueError(
                f"model {self.name!r}: {len(self.thresholds)} thresholds for {len(self.labels)} labels"
            )

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arch": self.arch,
            "architecture": self.architecture,
            "weights": self.weights.describe() if self.weights else None,
            "contract": self.contract.to_dict(),
            "n_labels": len(self.labels),
            "task": self.task,
            "license": self.license,
            "citation": self.citation,
            "description": self.description,
            "episode_rules": dict(self.episode_rules) if self.episode_rules else None,
            "episode_rules_from": self.episode_rules_from or None,
        }


_REGISTRY: dict[str, ModelEntry] = {}


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_model(entry: ModelEntry, *, overwrite: bool = False) -> ModelEntry:
    """Add an entry (``overwrite=True`` to replace one of the same name)."""
    key = normalize_name(entry.name)
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"a model named {entry.name!r} is already registered")
    _REGISTRY[key] = entry
    return entry


def unregister_model(name: str) -> ModelEntry:
    """Remove an entry (returns it)."""
    try:
        return _REGISTRY.pop(normalize_name(name))
    except KeyError:
        raise KeyError(f"no registered model named {name!r}") from None


def is_registered(name: str) -> bool:
    return normalize_name(name) in _REGISTRY


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[normalize_name(name)]
    except KeyError:
        raise KeyError(
            f"no registered model named {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def list_models(pretrained: bool | None = None) -> list[str]:
    """Registered names; ``pretrained=True`` keeps those with weights, ``False`` those without."""
    return sorted(
        k for k, e in _REGISTRY.items() if pretrained is None or (e.weights is not None) == pretrained
    )


HF_REPO = "PKUDigitalHealth/ECGFounder"
ECGFOUNDER_CITATION = (
    "Li J, Aguirre A, Moura J, Liu C, Zhong L, Sun C, Clifford G, Westover B, Hong S. "
    "An Electrocardiogram Foundation Model Built on over 10 Million Recordings with External "
    "Evaluation across Multiple Domains. arXiv:2410.04133 (2024); NEJM AI (2025)."
)
ECGFOUNDER_LICENSE = (
    "MIT, as declared by the upstream repository PKUDigitalHealth/ECGFounder; check the Hugging "
    "Face model card for the terms of the weights before clinical or commercial use"
)


def _register_builtin() -> None:
    labels = ecgfounder_labels()
    common = dict(
        labels=labels,
        license=ECGFOUNDER_LICENSE,
        citation=ECGFOUNDER_CITATION,
        tags=("pretrained", "heedb", "150-labels"),
    )
    register_model(
        ModelEntry(
            name="ecgfounder-12lead",
            arch="base",
            config=get_preset("base", in_channels=12, n_classes=150),
            contract=InputContract(leads=STANDARD_12_LEADS),
            weights=WeightSource(hub_repo=HF_REPO, filename="12_lead_ECGFounder.pth"),
            description="Released ECGFounder, 12 leads, 150 HEEDB labels (multi-label, sigmoid).",
            **common,  # type: ignore[arg-type]
        )
    )
    register_model(
        ModelEntry(
            name="ecgfounder-1lead",
            arch="base",
            config=get_preset("base", in_channels=1, n_classes=150),
            contract=InputContract(leads=("I",)),
            weights=WeightSource(hub_repo=HF_REPO, filename="1_lead_ECGFounder.pth"),
            description="Released single-lead ECGFounder (lead I), 150 HEEDB labels (multi-label, sigmoid).",
            **common,  # type: ignore[arg-type]
        )
    )

    # Both bundled rhythm models combine windows by ``logit`` (the normalised geometric mean of the
    # window probabilities), chosen on the validation split (598 records, docs/evaluation.md).
    def bundled_rhythm(
        name: str, description: str, output_prior: tuple[float, ...], episode_rules: dict[str, float]
    ) -> None:
        """A bundled single-lead CinC 2017 rhythm model (tiny Net1D, weights in the package)."""
        register_model(
            ModelEntry(
                name=name,
                arch="tiny",
                config=get_preset("tiny", in_channels=1, n_classes=4),
                contract=InputContract(leads=("I",)),
                labels=("normal", "AF", "other", "noisy"),
                weights=WeightSource(
                    filename=f"{name}.safetensors",
                    package_file=f"models/weights/{name}.safetensors",
                    format="ecgfounder",
                ),
                license="MIT (weights trained by the ecgfounder project on PhysioNet/CinC Challenge 2017 "
                "data, "
                "ODC-By 1.0: cite Clifford et al., CinC 2017)",
                citation="Clifford GD et al. AF Classification from a Short Single Lead ECG Recording: the "
                "PhysioNet/Computing in Cardiology Challenge 2017. Computing in Cardiology 44 (2017).",
                description=description,
                thresholds=(0.5, 0.5, 0.5, 0.5),
                task="multiclass",
                tags=("bundled", "cinc2017", "rhythm"),
                aggregate="logit",
                output_prior=output_prior,
                episode_rules=episode_rules,
                episode_rules_from="chosen on validation records (3 assemblies of 1 h from the "
                "validation split of examples/train_cinc2017_tiny.yaml) by benchmarks/tune_monitor_rules.py",
            )
        )

    from .delineator import DELINEATOR_FS, WAVE_CLASSES, DelineatorConfig

    register_model(
        ModelEntry(
            name="ludb-delineator",
            arch="delineator-16",
            architecture="delineator-unet",
            config=DelineatorConfig(width=16, n_classes=len(WAVE_CLASSES)),
            # one lead at a time, any lead, any length (10 s shown); ecgfounder.models.delineator_input
            contract=InputContract(
                fs=DELINEATOR_FS, n_samples=int(10 * DELINEATOR_FS), leads=("II",), preprocessing="delineator"
            ),
            labels=WAVE_CLASSES,
            weights=WeightSource(
                filename="ludb-delineator.safetensors",
                package_file="models/weights/ludb-delineator.safetensors",
                format="delineator",
            ),
            license="MIT (weights trained by the ecgfounder project on LUDB v1.0.1, ODC-By 1.0: cite "
            "Kalyakulina et al. 2020)",
            citation="Kalyakulina AI et al. LUDB: A New Open-Access Validation Tool for Electrocardiogram "
            "Delineation Algorithms. IEEE Access 8 (2020).",
            description="Bundled wave delineator: P, QRS, T and neither for every sample of one lead at "
            "250 Hz; the measurements (PR, QRS, QT...) are built on it (docs/measure.md).",
            task="segmentation",
            tags=("bundled", "ludb", "delineation"),
        )
    )

    bundled_rhythm(
        "cinc2017-rhythm-tiny",
        "Bundled single-lead rhythm classifier (normal, AF, other, noisy; softmax), tiny "
        "Net1D (0.4M parameters) trained from scratch by examples/train_cinc2017_tiny.yaml. "
        "Held-out CinC 2017 (1,194 records): AF AUROC 0.971 (0.956-0.984), challenge F1 "
        "0.796 (windows combined by their mean logit; 0.783 by their mean probability). Works "
        "offline. Not a medical device.",
        # the mean window probabilities on the 3,296 windows of the 598 validation records
        (0.4685, 0.1183, 0.3497, 0.0635),
        # `monitor`'s AF operating point, chosen on validation records (docs/monitor.md)
        dict(on=0.5, off=0.45, smooth_windows=5, min_duration_s=30.0, merge_gap_s=30.0, rr_weight=0.0),
    )
    bundled_rhythm(
        "cinc2017-rhythm",
        "Bundled single-lead rhythm classifier (normal, AF, other, noisy; softmax), tiny Net1D "
        "(0.4M parameters) distilled from an ensemble teacher (cinc2017-rhythm-tiny + an 8.4M-"
        "parameter `small` Net1D) by examples/distill_cinc2017_bundled.yaml. Held-out CinC 2017 "
        "(1,194 records): challenge F1 0.817, AF AUROC 0.972 (windows combined by their mean logit; "
        "0.798 by their mean probability). Works offline. Not a medical device.",
        (0.5182, 0.1073, 0.3317, 0.0428),
        dict(
            on=0.6,
            off=0.45,
            smooth_windows=1,
            min_duration_s=20.0,
            merge_gap_s=30.0,
            rr_weight=0.25,
            rr_cv_center=0.12,
        ),
    )


HUBERT_ECG_CITATION = (
    "Coppola E, Savardi M, Massussi M, Adamo M, Metra M, Signoroni A. HuBERT-ECG as a self-supervised "
    "foundation model for broad and scalable cardiac applications. medRxiv 2024.11.14.24317328 (2024)."
)
HUBERT_ECG_LICENSE = (
    "CC BY-NC 4.0 (weights and upstream code, Edoar-do/HuBERT-ECG): non-commercial use only; our "
    "implementation is written from the paper and the weights' layout"
)
STMEM_CITATION = (
    "Na Y, Park M, Tae Y, Joo S. Guiding Masked Representation Learning to Capture Spatio-Temporal "
    "Relationship of Electrocardiogram. ICLR 2024."
)
STMEM_LICENSE = (
    "CC BY-NC 4.0 (weights and upstream code, bakqui/ST-MEM): non-commercial use only; our "
    "implementation is written from the paper and the weights' layout"
)
ECG_FM_CITATION = (
    "McKeen K, Masood S, Toma A, Rubin B, Wang B. ECG-FM: An Open Electrocardiogram Foundation Model. "
    "arXiv:2408.05178 (2024); JAMIA Open (2025)."
)
ECG_FM_LICENSE = (
    "MIT (code, bowang-lab/ECG-FM and Jwoo5/fairseq-signals); check the Hugging Face model card "
    "wanglab/ecg-fm for the terms of the weights"
)


def _register_foundation() -> None:
    """The other ECG foundation models (encoders without a head: task ``embedding``; ``compare``,
    ``embed`` and fine-tuning put a head on them)."""
    from .ecg_fm import ECG_FM_PRESET
    from .hubert_ecg import HUBERT_ECG_PRESETS
    from .stmem import STMEM_PRESETS

    register_model(
        ModelEntry(
            name="ecg-fm",
            arch="base",
            architecture="ecg-fm",
            config=ECG_FM_PRESET,
            contract=InputContract(fs=500.0, n_samples=2500, preprocessing="ecg-fm"),
            labels=(),
            weights=WeightSource(hub_repo="wanglab/ecg-fm", filename="mimic_iv_ecg_physionet_pretrained.pt"),
            license=ECG_FM_LICENSE,
            citation=ECG_FM_CITATION,
            description="ECG-FM (90.9M parameters), wav2vec 2.0 pretrained with W2V+CMSC+RLM on MIMIC-IV-ECG "
            "and PhysioNet 2021; 5 s at 500 Hz, 12 leads; encoder only (embedding).",
            task="embedding",
            tags=("foundation", "self-supervised", "ecg-fm"),
        )
    )

    hubert_contract = InputContract(fs=100.0, n_samples=500, preprocessing="hubert-ecg")
    for size, params in (("small", "30M"), ("base", "93M"), ("large", "213M")):
        register_model(
            ModelEntry(
                name=f"hubert-ecg-{size}",
                arch=size,
                architecture="hubert-ecg",
                config=HUBERT_ECG_PRESETS[size],
                contract=hubert_contract,
                labels=(),
                weights=WeightSource(hub_repo=f"Edoardo-BS/hubert-ecg-{size}", filename="model.safetensors"),
                license=HUBERT_ECG_LICENSE,
                citation=HUBERT_ECG_CITATION,
                description=f"HuBERT-ECG {size} (about {params} parameters), self-supervised on 9.1M "
                "12-lead ECGs; 5 s at 100 Hz, leads end to end; encoder only (embedding).",
                task="embedding",
                tags=("foundation", "self-supervised", "hubert-ecg"),
            )
        )
    for size in ("small", "base"):
        register_model(
            ModelEntry(
                name=f"st-mem-{size}",
                arch=size,
                architecture="st-mem",
                config=STMEM_PRESETS[size],
                contract=InputContract(fs=250.0, n_samples=2250, preprocessing="st-mem"),
                labels=(),
                # released on Google Drive (upstream README), not on a hub: load the downloaded
                # encoder.pth with load_model(PATH); its shapes select this entry's contract
                weights=None,
                license=STMEM_LICENSE,
                citation=STMEM_CITATION,
                description=f"ST-MEM ViT-{size[0].upper()} encoder (spatio-temporal masked ECG modelling); "
                "9 s at 250 Hz, 12 leads. Weights: the upstream README's encoder.pth, loaded from a file.",
                task="embedding",
                tags=("foundation", "self-supervised", "st-mem"),
            )
        )


_register_builtin()
_register_foundation()


def entry_from_preset(arch: str, **overrides: Any) -> ModelEntry:
    """An unregistered, weightless entry for an architecture preset (for training from scratch)."""
    in_channels = overrides.pop("in_channels", 12)
    n_classes = overrides.pop("n_classes", 150)
    labels = overrides.pop("labels", None)
    contract = overrides.pop("contract", None)
    config = get_preset(arch, in_channels=in_channels, n_classes=n_classes, **overrides)
    if labels is None:
        labels = ecgfounder_labels() if n_classes == 150 else tuple(f"class_{i}" for i in range(n_classes))
    if contract is None:
        leads = (
            STANDARD_12_LEADS
            if in_channels == 12
            else (("I",) if in_channels == 1 else tuple(f"ch{i}" for i in range(in_channels)))
        )
        contract = InputContract(leads=leads)
    return ModelEntry(name=arch, arch=arch, config=config, contract=contract, labels=tuple(labels))
