#!/usr/bin/python3
"""Recomputes pneumo's evaluation metrics with scikit-learn and compares.

Input: the JSON file written by tests/test_eval_sklearn.c, a list of cases
{name, prob, label, c: pn_metrics_to_json output, report, thr_sens95?, thr_youden?}.
Exit 0 when every value matches (absolute tolerance 1e-9), 1 on any mismatch
(each one printed with both values), 77 when sklearn is missing.

pneumo's documented conventions that sklearn does not share:
  - a metric with a zero denominator (or ROC AUC / AP with one class) is null
    in pneumo, where sklearn warns and returns 0 (or a partial value);
  - predicted positive means prob >= threshold (compared in float32);
  - log loss clips probabilities to [1e-15, 1 - 1e-15];
  - ECE uses 10 equal-width bins on P(pneumonia) (sklearn has no ECE; it is
    recomputed here with numpy).
"""
import json
import math
import sys
import warnings

try:
    import numpy as np
    from sklearn import metrics as skm
except ImportError as e:  # pragma: no cover
    print(f"SKIP: scikit-learn/numpy not importable: {e}")
    sys.exit(77)

TOL = 1e-9


def ece_numpy(p, y):
    bins = np.minimum((p * 10).astype(int), 9)
    total = 0.0
    for b in range(10):
        sel = bins == b
        if sel.any():
            total += sel.sum() / len(p) * abs(y[sel].mean() - p[sel].mean())
    return total


def expected(case):
    p32 = np.array(case["prob"], dtype=np.float32)
    p = p32.astype(np.float64)
    y = np.array(case["label"], dtype=int)
    t32 = np.float32(case["c"]["threshold"])
    pred = (p32 >= t32).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    has_pos, has_neg = tp + fn > 0, tn + fp > 0
    nan = float("nan")
    e = {
        "n": len(y), "n_pos": int(tp + fn), "n_neg": int(tn + fp),
        "confusion.tp": tp, "confusion.fp": fp, "confusion.tn": tn, "confusion.fn": fn,
        "accuracy": skm.accuracy_score(y, pred),
        "sensitivity": skm.recall_score(y, pred, pos_label=1, zero_division=0) if has_pos else nan,
        "specificity": skm.recall_score(y, pred, pos_label=0, zero_division=0) if has_neg else nan,
        "precision": skm.precision_score(y, pred, pos_label=1, zero_division=0) if tp + fp > 0 else nan,
        "npv": skm.precision_score(y, pred, pos_label=0, zero_division=0) if tn + fn > 0 else nan,
        "f1": skm.f1_score(y, pred, pos_label=1, zero_division=0) if tp + fp + fn > 0 else nan,
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred) if has_pos and has_neg else nan,
        "roc_auc": skm.roc_auc_score(y, p) if has_pos and has_neg else nan,
        "pr_auc": skm.average_precision_score(y, p) if has_pos else nan,
        "brier": skm.brier_score_loss(y, p, pos_label=1),
        "log_loss": skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "ece": ece_numpy(p, y),
    }
    if has_pos:
        fpr, tpr, thr = skm.roc_curve(y, p32, drop_intermediate=False)
        # thresholds are decreasing; thr[0] is a sentinel above every score
        ok = [i for i in range(1, len(thr)) if tpr[i] >= 0.95]
        e["thr_sens95"] = float(thr[ok[0]])
        if has_neg:
            P, N = tp + fn, tn + fp
            # J * P * N in integers, so exact ties resolve to the highest threshold
            scaled_j = [round(tpr[i] * P) * N - round(fpr[i] * N) * P for i in range(1, len(thr))]
            e["thr_youden"] = float(thr[1 + int(np.argmax(scaled_j))])
    report_defined = all(d > 0 for d in (tp + fn, tn + fp, tp + fp, tn + fn))
    if report_defined:
        e["report"] = skm.classification_report(y, pred, labels=[0, 1],
                                                target_names=["NORMAL", "PNEUMONIA"], digits=2)
    return e


def actual(case, key):
    if key in ("thr_sens95", "thr_youden", "report"):
        return case.get(key)
    obj = case["c"]
    for part in key.split("."):
        obj = obj[part]
    return obj


def same(want, got):
    if isinstance(want, str):
        return want == got
    want = float(want)
    if math.isnan(want):
        return got is None
    return got is not None and abs(want - float(got)) <= TOL


def main(path):
    with open(path) as f:
        cases = json.load(f)
    failures = 0
    compared = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in cases:
            for key, want in expected(case).items():
                got = actual(case, key)
                compared += 1
                if not same(want, got):
                    failures += 1
                    if isinstance(want, str):
                        print(f"MISMATCH {case['name']}.{key}:\n--- sklearn\n{want}--- pneumo\n{got}")
                    else:
                        print(f"MISMATCH {case['name']}.{key}: sklearn {want!r} pneumo {got!r}")
    print(f"sklearn_check: {len(cases)} cases, {compared} values compared, {failures} mismatches "
          f"(tolerance {TOL:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
