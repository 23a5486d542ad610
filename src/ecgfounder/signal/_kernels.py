"""Compiled kernels (numba) for the preprocessing chain; imported only when numba is installed.

``filtfilt`` here reproduces ``scipy.signal.filtfilt(b, a, x, padtype='odd',
padlen=3*max(len(a), len(b)))``: odd extension, direct form II transposed, initial state
``lfilter_zi * first sample`` on the forward and on the backward pass. The running median reproduces
``scipy.signal.medfilt(row, k)`` (zeros beyond both ends) by keeping the window as a sorted linked
list: per step one O(1) unlink, one short walk and one link, instead of a selection over the whole
window. Filters run on 16 rows side by side (SIMD across rows); the arithmetic per row is
unchanged, so the output is bit-identical to the one-row-at-a-time version.
Everything releases the GIL so rows can be split across threads.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)


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
    t = tmp[: n * cols].reshape((n, cols))
    for i in range(n):
        for g in range(cols):
            t[i, g] = x[r0 + g, i]
    for b, a, zi, pad in ((b1, a1, zi1, pad1), (b2, a2, zi2, pad2)):
        if b.shape[0] == 0:
            continue
        m = n + 2 * pad
        e = ext[: m * cols].reshape((m, cols))
        zz = z[: (b.shape[0] - 1) * cols].reshape((b.shape[0] - 1, cols))
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
def _median_list(x, k, val, seq, nxt, prv, first, out):  # pragma: no cover - compiled
    """out = medfilt(x, k) with zeros beyond both ends (k odd, >= 3).

    The window is a doubly linked list in sorted order over k fixed slots: the sample at padded
    index p lives in slot p % k, so the leaving sample's node is known without a search and is
    unlinked in O(1); the entering sample is linked in after a walk from the previous entering
    node (the signal is smooth, so the walk is short); the median pointer moves at most one node
    per step. Equal values are ordered by their index, which keeps "before the median" exact with
    ties. Scratch: ``val``, ``seq``, ``nxt``, ``prv`` of length k + 2 (two sentinels), ``first``
    of length k.
    """
    n = x.shape[0]
    if n == 0:
        return
    h = k // 2
    head = k
    tail = k + 1
    val[head] = -np.inf
    val[tail] = np.inf
    for p in range(k):
        q = p - h
        first[p] = x[q] if 0 <= q < n else 0.0
    order = np.argsort(first, kind="mergesort")  # stable: equal values in index order
    last = head
    for j in range(k):
        s = order[j]
        val[s] = first[s]
        seq[s] = s
        prv[s] = last
        nxt[last] = s
        last = s
    nxt[last] = tail
    prv[tail] = last
    med = order[h]
    out[0] = val[med]
    hint = last
    s = -1  # slot of the leaving sample: padded index i - 1
    for i in range(1, n):
        p_new = i + k - 1
        q = p_new - h
        v = x[q] if q < n else 0.0
        s += 1
        if s == k:
            s = 0
        # rank of `med` once the leaving node is gone and the entering one is in
        rank = h
        if med == s:
            med = nxt[s]
            rank = h + 1
            old_before = True
        else:
            vo = val[s]
            vm = val[med]
            old_before = vo < vm or (vo == vm and seq[s] < seq[med])
        new_before = v < val[med]  # the entering sample goes after every equal value
        # c: the first node with a value > v, walking from the previous entering node
        c = hint
        if c == s:
            c = nxt[s]
        if val[c] <= v and c != tail:
            c = nxt[c]
            while val[c] <= v and c != tail:  # +inf samples stop at the tail sentinel
                c = nxt[c]
        else:
            b = prv[c]
            while val[b] > v:
                c = b
                b = prv[c]
        a = prv[s]
        b = nxt[s]
        nxt[a] = b
        prv[b] = a
        if c == s:
            c = b
        a = prv[c]
        val[s] = v
        seq[s] = p_new
        prv[s] = a
        nxt[s] = c
        nxt[a] = s
        prv[c] = s
        if new_before:
            rank += 1
        if old_before:
            rank -= 1
        if rank > h:
            med = prv[med]
        elif rank < h:
            med = nxt[med]
        hint = s
        out[i] = val[med]


@numba.njit(**_JIT)
def median_row(x, k, out):  # pragma: no cover - compiled
    """out = scipy.signal.medfilt(x, k) (zeros beyond both ends), for odd k >= 3."""
    _median_list(
        x,
        k,
        np.empty(k + 2),
        np.empty(k + 2, np.int64),
        np.empty(k + 2, np.int64),
        np.empty(k + 2, np.int64),
        np.empty(k),
        out,
    )


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
        val = np.empty(k + 2)
        seq = np.empty(k + 2, np.int64)
        nxt = np.empty(k + 2, np.int64)
        prv = np.empty(k + 2, np.int64)
        first = np.empty(k)
        for r in range(rows):
            row = out[r]
            _median_list(row, k, val, seq, nxt, prv, first, med)
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
