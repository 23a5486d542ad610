"""Compiled (numba) AUROC and average precision over many bootstrap weight rows at once."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, parallel=True)
def auroc_ap_rows(w, order, y_sorted, last_in_group):  # pragma: no cover - compiled
    """For each row b of weights ``w`` (B, N): AUROC and average precision of the scores whose
    ascending order is ``order`` (ties grouped by ``last_in_group``). One pass per row, float64."""
    n_rows = w.shape[0]
    n = order.shape[0]
    auroc = np.empty(n_rows)
    ap = np.empty(n_rows)
    for b in numba.prange(n_rows):
        total_w = 0.0
        total_p = 0.0
        for k in range(n):
            wi = w[b, order[k]]
            total_w += wi
            total_p += wi * y_sorted[k]
        below_w = 0.0
        below_p = 0.0
        gw = 0.0
        gp = 0.0
        auc_num = 0.0
        ap_num = 0.0
        for k in range(n):
            wi = w[b, order[k]]
            gw += wi
            gp += wi * y_sorted[k]
            if last_in_group[k]:
                auc_num += gp * ((below_w - below_p) + 0.5 * (gw - gp))
                if gp > 0:
                    ap_num += gp * (total_p - below_p) / (total_w - below_w)
                below_w += gw
                below_p += gp
                gw = 0.0
                gp = 0.0
        total_n = total_w - total_p
        auroc[b] = auc_num / (total_p * total_n) if total_p > 0 and total_n > 0 else np.nan
        ap[b] = ap_num / total_p if total_p > 0 else np.nan
    return auroc, ap
