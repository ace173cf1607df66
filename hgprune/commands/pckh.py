"""``hgprune pckh GT.mat [PRED.mat]``: score ``pos_pred_src`` predictions against MPII ground truth."""

from __future__ import annotations

import argparse

from hgprune.commands.common import print_json
from hgprune.metrics import PROTOCOLS
from hgprune.settings import Real, flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gt", metavar="GT.mat", help="ground truth in gt_valid.mat layout (pos_gt_src, jnt_missing, "
                        "headboxes_src)")  # fmt: skip
    parser.add_argument("pred", metavar="PRED.mat", nargs="?", help="predictions, 1-based: pos_pred_src (16x2xN, "
                        "hgprune's and MPII's layout) or preds (Nx16x2, the seed's preds.mat); "
                        "default: GT's own pos_pred_src")  # fmt: skip
    parser.add_argument("--protocol", choices=PROTOCOLS, help="mpii (papers' PCKh) or seed; default: both")
    parser.add_argument("--threshold", **flag(Real(0, 10, lo_open=True), 0.5), help="PCKh threshold (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print JSON (one object per protocol, or a list)")


def main(args: argparse.Namespace) -> int:
    from hgprune.data.mpii import load_ground_truth_mat, load_predictions_mat
    from hgprune.errors import HgpruneError
    from hgprune.metrics import format_table, pckh

    gt = load_ground_truth_mat(args.gt)
    pred = load_predictions_mat(args.pred) if args.pred else load_predictions_mat(args.gt, "pos_pred_src")
    if pred.shape != gt.joints.shape:
        raise HgpruneError(f"{args.pred or args.gt}: {len(pred)} predictions for {len(gt.joints)} ground-truth people")
    if not 0 < args.threshold <= 1:
        raise HgpruneError(f"--threshold: must be in (0, 1], got {args.threshold}")
    protocols = [args.protocol] if args.protocol else list(PROTOCOLS)
    pred_source = args.pred or f"{args.gt} (pos_pred_src)"
    try:
        results = [pckh(pred, gt.joints, gt.missing, gt.headboxes, p, args.threshold) for p in protocols]
    except HgpruneError as exc:  # name the file holding the bad value: pred → PRED.mat, gt/headboxes → GT.mat
        what, sep, rest = str(exc).partition(": ")
        source = {"pred": pred_source, "gt": args.gt, "headboxes": args.gt}.get(what) if sep else None
        if source is None:
            raise
        variable = {"pred": "predictions", "gt": "pos_gt_src", "headboxes": "headboxes_src"}[what]
        raise HgpruneError(f"{source}: {variable}: {rest}") from None
    if args.json:
        dicts = [r.to_dict() for r in results]
        print_json(dicts[0] if len(dicts) == 1 else dicts)
        return 0
    print(f"PCKh@{args.threshold:g} of {args.pred or args.gt + ' (pos_pred_src)'} on {len(gt.joints)} people")
    print(format_table(results))
    if len(results) == 2:
        print(f"mpii: hit when dist <= thr, mean weighted by visible joints; seed: dist < thr, unweighted mean "
              f"(difference {results[0].mean - results[1].mean:+.2f})")  # fmt: skip
    return 0
