"""The ecgfounder recipe: parity with the official outputs, options, backends, torch version."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import signal as sps

from ecgfounder.signal import preprocess, preprocess_torch
from ecgfounder.signal.preprocess import filter_chain, numba_available

CASES = ["ptb_s0010_12lead", "mitbih_100_1lead", "cinc2017_A00001_1lead", "ptb_s0010_flat_lead"]
BACKENDS = ["scipy"] + (["numba"] if numba_available() else [])


@pytest.fixture(scope="module")
def ref(fixtures_dir):
    return np.load(fixtures_dir / "preprocess_reference.npz")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_matches_official_filter_and_zscore(ref, case, backend):
    x = ref[f"{case}_input"]
    filtered = filter_chain(x, 500, backend=backend)
    np.testing.assert_allclose(filtered, ref[f"{case}_filtered"], atol=1e-5, rtol=0)
    out = preprocess(x, 500, backend=backend)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, ref[f"{case}_filtered_zscored"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_torch_version_matches_official(ref, case):
    x = torch.from_numpy(ref[f"{case}_input"])[None]
    out = preprocess_torch(x, 500)
    np.testing.assert_allclose(out[0].numpy(), ref[f"{case}_filtered_zscored"], atol=1e-5, rtol=0)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_numba_equals_scipy_on_batches_and_threads(ref):
    rng = np.random.default_rng(0)
    x = np.stack(
        [
            ref["ptb_s0010_12lead_input"],
            ref["ptb_s0010_flat_lead_input"],
            rng.normal(size=(12, 5000)).cumsum(-1) * 0.01,
        ]
    )
    a = preprocess(x, backend="scipy", dtype=np.float64)
    b = preprocess(x, backend="numba", workers=1, dtype=np.float64)
    c = preprocess(x, backend="numba", workers=2, dtype=np.float64)
    np.testing.assert_allclose(b, a, atol=1e-9, rtol=0)
    assert np.array_equal(b, c)
    # batch == one at a time
    for i in range(3):
        np.testing.assert_allclose(preprocess(x[i], backend="numba", dtype=np.float64), b[i], atol=1e-12)


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
@pytest.mark.parametrize("n", [5000, 150, 201, 202, 777])
def test_running_median_kernel_equals_medfilt_with_ties(n):
    from ecgfounder.signal._kernels import median_row

    rng = np.random.default_rng(n)
    for x in (
        rng.normal(size=n),
        np.round(rng.normal(size=n) * 3),
        np.zeros(n),
        np.sort(rng.normal(size=n)),
        np.sort(rng.normal(size=n))[::-1].copy(),
        np.cumsum(rng.normal(size=n)),
    ):
        out = np.empty(n)
        median_row(x.astype(np.float64), 201, out)
        assert np.array_equal(out, sps.medfilt(x, 201))


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_running_median_kernel_small_windows_many_ties():
    from ecgfounder.signal._kernels import median_row

    rng = np.random.default_rng(0)
    for k in (3, 5, 7, 21):
        for _ in range(200):
            x = rng.integers(-3, 4, size=int(rng.integers(1, 40))).astype(np.float64)
            out = np.empty(len(x))
            median_row(x, k, out)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # medfilt warns when k exceeds the row
                assert np.array_equal(out, sps.medfilt(x, k)), (k, x)
    # infinities sort like scipy's; NaN gives no meaningful median but must not hang or crash
    x = rng.normal(size=500)
    x[[10, 11, 250, 499]] = np.inf
    x[[100, 300]] = -np.inf
    out = np.empty(len(x))
    median_row(x, 21, out)
    assert np.array_equal(out, sps.medfilt(x, 21))
    x[40:45] = np.nan
    median_row(x, 21, out)


def test_mains_option_removes_60hz_not_50hz():
    fs = 500
    t = np.arange(5000) / fs
    ecg_like = np.sin(2 * np.pi * 1.2 * t)
    hum60 = ecg_like + 0.5 * np.sin(2 * np.pi * 60 * t)

    def power_at(y, f):
        spec = np.abs(np.fft.rfft(y)) / len(y)
        return spec[int(round(f * len(y) / fs))]

    default = filter_chain(hum60, fs)
    us = filter_chain(hum60, fs, preprocess.__globals__["RECIPES"]["ecgfounder-60hz"])
    assert power_at(us, 60) < 0.01 * power_at(default, 60)
    out = preprocess(hum60, fs, mains_hz=60)
    assert out.shape == hum60.shape


def test_per_lead_zscore_option(ref):
    x = ref["ptb_s0010_12lead_input"]
    out = preprocess(x, zscore_mode="lead", dtype=np.float64)
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-9)
    np.testing.assert_allclose(out.std(-1), 1, atol=1e-6)
    glob = preprocess(x, dtype=np.float64)
    assert abs(glob.mean()) < 1e-9 and abs(glob.std() - 1) < 1e-6
    assert np.abs(glob.std(-1) - 1).max() > 0.05  # one std for all leads, not one per lead


def test_bad_input_is_refused():
    x = np.ones((12, 5000))
    x[3, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess(x)
    with pytest.raises(ValueError, match="too short"):
        preprocess(np.ones((1, 20)))
