#!/usr/bin/python3
"""Prints the model card's ablation table from the cv.json files that
scripts/cv-ablations.sh OUT_DIR ... wrote: one row per variant directory,
pooled out-of-fold figures with their 95% bootstrap intervals.
Usage: scripts/cv-table.py OUT_DIR [VARIANT...]   (default: every variant found)"""
import json
import os
import sys


def ci(pooled, key):
    lo, hi = pooled["ci95"][key]
    return "%.4f (%.4f–%.4f)" % (pooled[key], lo, hi)


def row(name, d):
    p = d["pooled"]
    three = d.get("three_class") or {}
    acc3 = "%.4f" % three["accuracy"] if "accuracy" in three else "–"
    return "| %s | %s | %s at sens. %.3f | %.4f | %s |" % (
        name, ci(p, "roc_auc"), ci(p, "specificity"), p["sensitivity"], d["calibration"]["ece_after"], acc3)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or sorted(n for n in os.listdir(out) if os.path.isfile(os.path.join(out, n, "cv.json")))
    print("| variant | ROC AUC (95% CI) | specificity (95% CI) | ECE after T | 3-class accuracy |")
    print("|---|---|---|---|---|")
    for name in names:
        path = os.path.join(out, name, "cv.json")
        if not os.path.isfile(path):
            print("| %s | not run | | | |" % name)
            continue
        with open(path) as f:
            print(row(name, json.load(f)))


if __name__ == "__main__":
    main()
