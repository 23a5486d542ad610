"""Compiled kernels (numba) for the preprocessing chain; imported only when numba is installed.

``filtfilt`` here reproduces ``scipy.signal.filtfilt(b, a, x, padtype='odd',
padlen=3*max(len(a), len(b)))``: odd extension, direct form II transposed, initial state
``lfilter_zi * first sample`` on the forward and on the backward pass. The running median reproduces
``scipy.signal.medfilt(row, k)`` (zeros beyond both ends) by keeping the window sorted: per step two
vectorised rank counts and one memmove, instead of a selection over the whole window.
Everything releases the GIL so rows can be split across threads.
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
def _pass_generic(b, a, zi, buf, start, stop, step):  # pragma: no cover - compiled
    """In place: buf[start:stop:step] = lfilter(b, a, ..., zi=zi*buf[start]) (any order)."""
    n = b.shape[0]
    z = np.empty(n - 1)
    for j in range(n - 1):
        z[j] = zi[j] * buf[start]
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
def _pass_2(b, a, zi, buf, start, stop, step):  # pragma: no cover - compiled
    """Second-order section (the notch) with its state in registers."""
    b0, b1, b2 = b[0], b[1], b[2]
    a1, a2 = a[1], a[2]
    z0 = zi[0] * buf[start]
    z1 = zi[1] * buf[start]
    i = start
    while i != stop:
        xi = buf[i]
        yi = b0 * xi + z0
        z0 = b1 * xi + z1 - a1 * yi
        z1 = b2 * xi - a2 * yi
        buf[i] = yi
        i += step


@numba.njit(**_JIT)
def _pass_8(b, a, zi, buf, start, stop, step):  # pragma: no cover - compiled
    """Eighth-order filter (4th-order Butterworth band-pass) with its state in registers."""
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    a1, a2, a3, a4, a5, a6, a7, a8 = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    x0 = buf[start]
    z0, z1, z2, z3 = zi[0] * x0, zi[1] * x0, zi[2] * x0, zi[3] * x0
    z4, z5, z6, z7 = zi[4] * x0, zi[5] * x0, zi[6] * x0, zi[7] * x0
    i = start
    while i != stop:
        xi = buf[i]
        yi = b0 * xi + z0
        z0 = b1 * xi + z1 - a1 * yi
        z1 = b2 * xi + z2 - a2 * yi
        z2 = b3 * xi + z3 - a3 * yi
        z3 = b4 * xi + z4 - a4 * yi
        z4 = b5 * xi + z5 - a5 * yi
        z5 = b6 * xi + z6 - a6 * yi
        z6 = b7 * xi + z7 - a7 * yi
        z7 = b8 * xi - a8 * yi
        buf[i] = yi
        i += step


@numba.njit(**_JIT)
def _lfilter_pass(b, a, zi, buf, start, stop, step):  # pragma: no cover - compiled
    if b.shape[0] == 3:
        _pass_2(b, a, zi, buf, start, stop, step)
    elif b.shape[0] == 9:
        _pass_8(b, a, zi, buf, start, stop, step)
    else:
        _pass_generic(b, a, zi, buf, start, stop, step)


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
    _lfilter_pass(b, a, zi, ext, 0, m, 1)
    _lfilter_pass(b, a, zi, ext, m - 1, -1, -1)
    for i in range(n):
        out[i] = ext[padlen + i]


@numba.njit(**_JIT)
def _search_pair(a, old, new, new_gt):  # pragma: no cover - compiled
    """(first i with a[i] >= old, first i with a[i] >= new if new_gt else first i with a[i] > new).

    Positions in the sorted window are counts of smaller elements. Counting over the whole window
    is branch-free and vectorises; on a 201-sample window it beats binary search, whose
    comparisons are coin flips.
    """
    n_old = 0
    n_new = 0
    if new_gt:
        for j in range(a.shape[0]):
            n_old += a[j] < old
            n_new += a[j] < new
    else:
        for j in range(a.shape[0]):
            n_old += a[j] < old
            n_new += a[j] <= new
    return n_old, n_new


@numba.njit(**_JIT)
def _median_row(x, k, window, out):  # pragma: no cover - compiled
    """out = medfilt(x, k) with zeros beyond both ends; ``window`` is scratch of length k."""
    n = x.shape[0]
    h = k // 2
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
        pos_old, pos_new = _search_pair(window, old, new, new > old)
        if new > old:
            # window[pos_old+1 : pos_new] move one step left; `new` goes just before pos_new
            _move(window, pos_old, pos_old + 1, pos_new - 1 - pos_old)
            window[pos_new - 1] = new
        else:
            # window[pos_new : pos_old] move one step right; `new` goes to pos_new
            _move(window, pos_new + 1, pos_new, pos_old - pos_new)
            window[pos_new] = new


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


@numba.njit(**_JIT)
def zscore_rows(y, leads, mode, eps, out):  # pragma: no cover - compiled
    """Z-score ``y`` (records*leads, n) into ``out``: mode 0 none, 1 one mean/std per record
    (all leads together, the official way), 2 per lead. Population std, ``(y - mean)/(std + eps)``."""
    rows, n = y.shape
    group = leads if mode == 1 else 1
    for g in range(0, rows, group):
        if mode == 0:
            for r in range(g, g + group):
                for i in range(n):
                    out[r, i] = y[r, i]
            continue
        total = 0.0
        for r in range(g, g + group):
            for i in range(n):
                total += y[r, i]
        mean = total / (group * n)
        ss = 0.0
        for r in range(g, g + group):
            for i in range(n):
                d = y[r, i] - mean
                ss += d * d
        scale = 1.0 / (np.sqrt(ss / (group * n)) + eps)
        for r in range(g, g + group):
            for i in range(n):
                out[r, i] = (y[r, i] - mean) * scale
