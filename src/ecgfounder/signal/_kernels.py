"""Compiled kernels (numba) for the preprocessing chain; imported only when numba is installed.

``filtfilt_rows`` reproduces ``scipy.signal.filtfilt(b, a, x, padtype='odd', padlen=3*max(len(a),
len(b)))`` (direct form II transposed, initial state ``lfilter_zi * first sample`` on both passes)
row by row. ``running_median_rows`` reproduces ``scipy.signal.medfilt(row, k)`` (zero-padded edges)
with a sorted window updated in place, O(k) memory moves per step instead of a selection per window.
Both release the GIL so rows can be split across threads.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

_JIT = dict(nogil=True, cache=True)


@intrinsic
def _move(typingctx, arr, dst, src, count):  # pragma: no cover - compiled
    """memmove(&arr[dst], &arr[src], count elements) on a contiguous 1-D array (LLVM intrinsic)."""
    sig = types.void(arr, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        cgutils.raw_memmove(builder, cgutils.gep(builder, ary.data, args[1]),
                            cgutils.gep(builder, ary.data, args[2]), args[3], itemsize)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(**_JIT)
def _lfilter_inplace(b, a, zi, x0, buf, start, stop, step):  # pragma: no cover - compiled
    """y = lfilter(b, a, buf[start:stop:step], zi=zi*x0), written back into buf."""
    n = b.shape[0]
    z = np.empty(n - 1)
    for j in range(n - 1):
        z[j] = zi[j] * x0
    i = start
    while i != stop:
        xi = buf[i]
        yi = b[0] * xi + z[0]
        for j in range(n - 2):
            z[j] = b[j + 1] * xi + z[j + 1] - a[j + 1] * yi
        z[n - 2] = b[n - 1] * xi - a[n - 1] * yi
        buf[i] = yi
        i += step


@numba.njit(**_JIT)
def _filtfilt_row(b, a, zi, x, padlen, ext, out):  # pragma: no cover - compiled
    n = x.shape[0]
    # odd extension: 2*x[0] - x[padlen:0:-1], x, 2*x[-1] - x[-2:-padlen-2:-1]
    for i in range(padlen):
        ext[i] = 2.0 * x[0] - x[padlen - i]
        ext[padlen + n + i] = 2.0 * x[n - 1] - x[n - 2 - i]
    for i in range(n):
        ext[padlen + i] = x[i]
    m = n + 2 * padlen
    _lfilter_inplace(b, a, zi, ext[0], ext, 0, m, 1)
    _lfilter_inplace(b, a, zi, ext[m - 1], ext, m - 1, -1, -1)
    for i in range(n):
        out[i] = ext[padlen + i]


@numba.njit(**_JIT)
def _median_row(x, k, window, out):  # pragma: no cover - compiled
    """out = medfilt(x, k) with zeros beyond both ends; ``window`` is scratch of length k."""
    n = x.shape[0]
    h = k // 2
    # First window: h zeros then x[0 : k-h] (zeros where x is shorter).
    for j in range(k):
        p = j - h
        window[j] = x[p] if 0 <= p < n else 0.0
    window.sort()
    for i in range(n):
        out[i] = window[h]
        if i == n - 1:
            break
        p_old = i - h
        old = x[p_old] if p_old >= 0 else 0.0
        p_new = i + h + 1
        new = x[p_new] if p_new < n else 0.0
        if old == new:
            continue
        pos_old = _lower_bound(window, old)
        if new > old:
            # window[pos_old+1 : pos_new] move one step left, `new` goes just before pos_new
            pos_new = _lower_bound(window, new)
            _move(window, pos_old, pos_old + 1, pos_new - 1 - pos_old)
            window[pos_new - 1] = new
        else:
            # window[pos_new : pos_old] move one step right, `new` goes to pos_new
            pos_new = _upper_bound(window, new)
            _move(window, pos_new + 1, pos_new, pos_old - pos_new)
            window[pos_new] = new


@numba.njit(**_JIT)
def _lower_bound(a, v):  # pragma: no cover - compiled
    """First index i with a[i] >= v (branch-free halving: the comparisons are unpredictable)."""
    base = 0
    n = a.shape[0]
    while n > 1:
        half = n >> 1
        base = base + half if a[base + half - 1] < v else base
        n -= half
    return base + (1 if a[base] < v else 0)


@numba.njit(**_JIT)
def _upper_bound(a, v):  # pragma: no cover - compiled
    """First index i with a[i] > v."""
    base = 0
    n = a.shape[0]
    while n > 1:
        half = n >> 1
        base = base + half if a[base + half - 1] <= v else base
        n -= half
    return base + (1 if a[base] <= v else 0)


@numba.njit(**_JIT)
def chain_rows(x, b1, a1, zi1, pad1, b2, a2, zi2, pad2, k, out):  # pragma: no cover - compiled
    """For each row: filtfilt(b1, a1) -> filtfilt(b2, a2) -> minus running median of k.

    ``b1`` may be empty (no notch). ``k`` <= 1 skips the median.
    """
    rows, n = x.shape
    ext = np.empty(n + 2 * max(pad1, pad2))
    tmp = np.empty(n)
    filt = np.empty(n)
    med = np.empty(n)
    window = np.empty(max(k, 1))
    for r in range(rows):
        if b1.shape[0] > 0:
            _filtfilt_row(b1, a1, zi1, x[r], pad1, ext, tmp)
            _filtfilt_row(b2, a2, zi2, tmp, pad2, ext, filt)
        else:
            _filtfilt_row(b2, a2, zi2, x[r], pad2, ext, filt)
        if k > 1:
            _median_row(filt, k, window, med)
            for i in range(n):
                out[r, i] = filt[i] - med[i]
        else:
            for i in range(n):
                out[r, i] = filt[i]
