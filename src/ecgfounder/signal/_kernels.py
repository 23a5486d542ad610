"""Compiled kernels (numba) for the preprocessing chain; imported only when numba is installed.

``filtfilt`` here reproduces ``scipy.signal.filtfilt(b, a, x, padtype='odd',
padlen=3*max(len(a), len(b)))``: odd extension, direct form II transposed, initial state
``lfilter_zi * first sample`` on the forward and on the backward pass. The running median reproduces
``scipy.signal.medfilt(row, k)`` (zeros beyond both ends) by keeping the window sorted: per step two
short scans from the previous positions and one memmove, instead of a selection over the whole
window. Filters run on 16 rows side by side (SIMD across rows); the arithmetic per row is
unchanged, so the output is bit-identical to the one-row-at-a-time version.
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


# Filter passes run on a group of rows at once, stored interleaved: ``buf[i, g]`` is sample i of
# row g. The recursion is serial along the samples, so one row at a time is bound by the latency
# of its multiply-adds; G independent rows side by side fill the SIMD lanes instead (about 2x on
# 12-lead records). The arithmetic per row is the same, in the same order: results are identical.
GROUP = 16


@numba.njit(**_JIT)
def _pass_generic(b, a, zi, buf, z, start, stop, step):  # pragma: no cover - compiled
    """In place, per column g: buf[start:stop:step, g] = lfilter(b, a, ..., zi=zi*buf[start, g])."""
    n = b.shape[0]
    cols = buf.shape[1]
    for j in range(n - 1):
        for g in range(cols):
            z[j, g] = zi[j] * buf[start, g]
    i = start
    while i != stop:
        row = buf[i]
        for g in range(cols):
            xi = row[g]
            yi = b[0] * xi + z[0, g]
            for j in range(n - 2):
                z[j, g] = b[j + 1] * xi + z[j + 1, g] - a[j + 1] * yi
            z[n - 2, g] = b[n - 1] * xi - a[n - 1] * yi
            row[g] = yi
        i += step


@numba.njit(**_JIT)
def _pass_2(b, a, zi, buf, z, start, stop, step):  # pragma: no cover - compiled
    """Second-order section (the notch)."""
    cols = buf.shape[1]
    b0, b1, b2 = b[0], b[1], b[2]
    a1, a2 = a[1], a[2]
    z0 = z[0]
    z1 = z[1]
    for g in range(cols):
        z0[g] = zi[0] * buf[start, g]
        z1[g] = zi[1] * buf[start, g]
    i = start
    while i != stop:
        row = buf[i]
        for g in range(cols):
            xi = row[g]
            yi = b0 * xi + z0[g]
            z0[g] = b1 * xi + z1[g] - a1 * yi
            z1[g] = b2 * xi - a2 * yi
            row[g] = yi
        i += step


@numba.njit(**_JIT)
def _pass_8(b, a, zi, buf, z, start, stop, step):  # pragma: no cover - compiled
    """Eighth-order filter (4th-order Butterworth band-pass)."""
    cols = buf.shape[1]
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    a1, a2, a3, a4, a5, a6, a7, a8 = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    z0, z1, z2, z3, z4, z5, z6, z7 = z[0], z[1], z[2], z[3], z[4], z[5], z[6], z[7]
    for g in range(cols):
        x0 = buf[start, g]
        z0[g], z1[g], z2[g], z3[g] = zi[0] * x0, zi[1] * x0, zi[2] * x0, zi[3] * x0
        z4[g], z5[g], z6[g], z7[g] = zi[4] * x0, zi[5] * x0, zi[6] * x0, zi[7] * x0
    i = start
    while i != stop:
        row = buf[i]
        for g in range(cols):
            xi = row[g]
            yi = b0 * xi + z0[g]
            z0[g] = b1 * xi + z1[g] - a1 * yi
            z1[g] = b2 * xi + z2[g] - a2 * yi
            z2[g] = b3 * xi + z3[g] - a3 * yi
            z3[g] = b4 * xi + z4[g] - a4 * yi
            z4[g] = b5 * xi + z5[g] - a5 * yi
            z5[g] = b6 * xi + z6[g] - a6 * yi
            z6[g] = b7 * xi + z7[g] - a7 * yi
            z7[g] = b8 * xi - a8 * yi
            row[g] = yi
        i += step


@numba.njit(**_JIT)
def _lfilter_pass(b, a, zi, buf, z, start, stop, step):  # pragma: no cover - compiled
    if b.shape[0] == 3:
        _pass_2(b, a, zi, buf, z, start, stop, step)
    elif b.shape[0] == 9:
        _pass_8(b, a, zi, buf, z, start, stop, step)
    else:
        _pass_generic(b, a, zi, buf, z, start, stop, step)


@numba.njit(**_JIT)
def _filter_group(x, r0, r1, b1, a1, zi1, pad1, b2, a2, zi2, pad2, ext, tmp, z, filt):  # pragma: no cover
    """Rows r0:r1 of ``x``: filtfilt(b1, a1) (skipped when ``b1`` is empty) then filtfilt(b2, a2),
    into ``filt[r0:r1]``. ``ext``, ``tmp`` and ``z`` are flat scratch, viewed here as contiguous
    (n + 2*pad, cols), (n, cols) and (order, cols) arrays (contiguous views vectorise)."""
    n = x.shape[1]
    cols = r1 - r0
    t = tmp[:n * cols].reshape((n, cols))
    for i in range(n):
        for g in range(cols):
            t[i, g] = x[r0 + g, i]
    for b, a, zi, pad in ((b1, a1, zi1, pad1), (b2, a2, zi2, pad2)):
        if b.shape[0] == 0:
            continue
        m = n + 2 * pad
        e = ext[:m * cols].reshape((m, cols))
        zz = z[:(b.shape[0] - 1) * cols].reshape((b.shape[0] - 1, cols))
        for g in range(cols):
            first = t[0, g]
            last = t[n - 1, g]
            for i in range(pad):
                e[i, g] = 2.0 * first - t[pad - i, g]
                e[pad + n + i, g] = 2.0 * last - t[n - 2 - i, g]
        for i in range(n):
            for g in range(cols):
                e[pad + i, g] = t[i, g]
        _lfilter_pass(b, a, zi, e, zz, 0, m, 1)
        _lfilter_pass(b, a, zi, e, zz, m - 1, -1, -1)
        for i in range(n):
            for g in range(cols):
                t[i, g] = e[pad + i, g]
    for g in range(cols):
        for i in range(n):
            filt[r0 + g, i] = t[i, g]


@numba.njit(**_JIT)
def _seek(a, v, strict, h):  # pragma: no cover - compiled
    """In sorted ``a``: the first i with a[i] >= v (a[i] > v if ``strict``), scanning from ``h``.

    The window slides over a smooth (band-passed) signal, so consecutive values leaving and
    entering it land a few places from where the previous ones did: a scan from the last position
    takes a handful of steps where a count over the window takes k.
    """
    n = a.shape[0]
    if strict:
        if h < n and a[h] <= v:
            h += 1
            while h < n and a[h] <= v:
                h += 1
        else:
            while h > 0 and a[h - 1] > v:
                h -= 1
    else:
        if h < n and a[h] < v:
            h += 1
            while h < n and a[h] < v:
                h += 1
        else:
            while h > 0 and a[h - 1] >= v:
                h -= 1
    return h


@numba.njit(**_JIT)
def _median_row(x, k, window, out):  # pragma: no cover - compiled
    """out = medfilt(x, k) with zeros beyond both ends; ``window`` is scratch of length k."""
    n = x.shape[0]
    h = k // 2
    for j in range(k):
        p = j - h
        window[j] = x[p] if 0 <= p < n else 0.0
    window.sort()
    hint_old = h
    hint_new = h
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
        pos_old = _seek(window, old, False, hint_old)
        if new > old:
            # window[pos_old+1 : pos_new] move one step left; `new` goes just before pos_new
            pos_new = _seek(window, new, False, max(hint_new, pos_old))
            _move(window, pos_old, pos_old + 1, pos_new - 1 - pos_old)
            window[pos_new - 1] = new
            hint_new = pos_new - 1
        else:
            # window[pos_new : pos_old] move one step right; `new` goes to pos_new
            pos_new = _seek(window, new, True, min(hint_new, pos_old))
            _move(window, pos_new + 1, pos_new, pos_old - pos_new)
            window[pos_new] = new
            hint_new = pos_new
        hint_old = pos_old


@numba.njit(**_JIT)
def chain_rows(x, b1, a1, zi1, pad1, b2, a2, zi2, pad2, k, out):  # pragma: no cover - compiled
    """For each row: filtfilt(b1, a1) -> filtfilt(b2, a2) -> minus running median of k.

    ``b1`` may be empty (no notch). ``k`` <= 1 skips the median. ``out`` may not alias ``x``.
    """
    rows, n = x.shape
    pad = max(pad1, pad2)
    order = max(b1.shape[0], b2.shape[0]) - 1
    ext = np.empty((n + 2 * pad) * GROUP)
    tmp = np.empty(n * GROUP)
    z = np.empty(max(order, 1) * GROUP)
    for r0 in range(0, rows, GROUP):
        _filter_group(x, r0, min(r0 + GROUP, rows), b1, a1, zi1, pad1, b2, a2, zi2, pad2, ext, tmp, z, out)
    if k > 1:
        med = np.empty(n)
        window = np.empty(k)
        for r in range(rows):
            row = out[r]
            _median_row(row, k, window, med)
            for i in range(n):
                row[i] = row[i] - med[i]


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
