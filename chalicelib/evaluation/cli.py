"""`lfr eval` and `lfr calibrate`: add_commands(subparsers) adds both to the `lfr` command."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.settings import Settings

SUBSETS = {
    "all": None,
    # name_half() == 0: the identities the shipped statistics were measured on.
    "stats-half": 0,
    # name_half() == 1: identities the shipped statistics never saw.
    "holdout-half": 1,
}


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_eval(subparsers)
    _add_calibrate(subparsers)
    _add_calibrate_mated(subparsers)


def _add_eval(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = subparsers.add_parser(
        "eval", help="open-set 1:N evaluation (TPIR at FPIR, rank-1, DET, calibrated decision)")
    ev.add_argument("--data", type=Path, required=True, help="folder with one folder per identity")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--enroll", type=int, default=1, help="reference images per enrolled subject")
    ev.add_argument("--watchlist-size", type=int, default=None,
                    help="identities to enroll (default: half of them)")
    ev.add_argument("--target-fpir", type=float, default=0.001,
                    help="target of the calibrated decision (default 0.001)")
    ev.add_argument("--operating-size", type=int, default=None, metavar="N",
                    help="report the operating points at the thresholds the product would "
                         "apply to a watchlist of N subjects with this gallery's mix of "
                         "reference counts (default: the gallery's own size)")
    ev.add_argument("--json", type=Path, default=None, help="write the results here")
    ev.add_argument("--det", type=Path, default=Path("eval-det.png"), help="DET curve PNG")
    ev.add_argument("--probe-faces", choices=["labelled", "all"], default="labelled",
                    help="faces of a probe image that the ground truth judges: labelled (the "
                         "most central large face, the person the folder names; alerts on "
                         "bystanders are counted, not judged) or all (every face)")
    ev.add_argument("--stats", type=Path, default=None,
                    help="impostor statistics from `lfr calibrate` (default: shipped ones)")
    _common(ev)
    ev.add_argument("--check-targets", type=_floats, default=None,
                    help="also measure the calibrated FPIR over many random watchlists, "
                         "e.g. 0.01,0.001")
    ev.add_argument("--check-sizes", type=_ints, default=[100, 200, 400],
                    help="watchlist sizes for --check-targets (default 100,200,400)")
    ev.add_argument("--min-off-list", type=int, default=100,
                    help="identities every drawn watchlist must leave off, for --check-targets "
                         "(default 100: a rate measured on a dozen people says nothing)")
    ev.add_argument("--repeats", type=int, default=200,
                    help="random watchlists per size for --check-targets")
    ev.add_argument("--groups", type=Path, default=None, metavar="FILE",
                    help="demographic differentials: FPIR and FNIR per group at the calibrated "
                         "threshold (and at each --threshold), with 95%% intervals and tests. "
                         "FILE (CSV identity,group or JSON {identity: group}) is the force's "
                         "own labelling of its evaluation set; identities not in it are "
                         "'unlabelled'. NO labelled demographic set ships with lfr: run it on "
                         "your own labelled faces (docs/accuracy.md). benchmarks/"
                         "pseudo_groups.py writes a made-up grouping that only tests the "
                         "machinery")
    ev.add_argument("--threshold", type=_floats, default=[], metavar="T[,T...]",
                    help="further thresholds for --groups, e.g. 0.36,0.40")
    ev.add_argument("--differentials-out", type=Path, default=None, metavar="FILE",
                    help="with --groups: write the differentials record that deployment "
                         "creation reads (LFR_DIFFERENTIALS_PATH)")
    ev.set_defaults(func=cmd_eval)


def _add_calibrate(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cal = subparsers.add_parser(
        "calibrate", help="measure the impostor score model on your own background faces")
    cal.add_argument("--background", type=Path, required=True,
                     help="folder with one folder per identity (people on no watchlist)")
    cal.add_argument("--out", type=Path, default=None,
                     help="stats JSON to write (default: calibration-<model id>.json)")
    cal.add_argument("--description", default="", help="where the background faces came from")
    cal.add_argument("--measure-centre", type=Path, default=None, metavar="PATH",
                     help="first measure the embedding space's background centre on these "
                          "faces and write it to PATH, then fit the statistics for embeddings "
                          "centred on it (how the shipped centre was made; a new centre is a "
                          "new embedding space: watchlists must be enrolled again)")
    _common(cal)
    cal.set_defaults(func=cmd_calibrate)


def _add_calibrate_mated(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mated = subparsers.add_parser(
        "calibrate-mated", help="measure what a subject's references will probably catch "
                                "(the expected TPIR a watchlist summary reports)")
    mated.add_argument("--background", type=Path, required=True,
                       help="folder with one folder per identity (two or more photos each)")
    mated.add_argument("--out", type=Path, default=None,
                       help="model JSON to write (default: the shipped one of this space)")
    mated.add_argument("--check", choices=sorted(SUBSETS), default=None,
                       help="then compare predicted and measured TPIR on these identities")
    _common(mated)
    mated.set_defaults(func=cmd_calibrate_mated)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--identities", choices=sorted(SUBSETS), default="all",
                   help="all identities, or one half by name hash (stats-half: those the "
                        "shipped statistics were measured on; holdout-half: the others)")
    p.add_argument("--limit", type=int, default=None, help="first N identities (by name) only")
    p.add_argument("--workers", type=int, default=1, help="processes embedding images")
    p.add_argument("--cache", type=Path, default=None,
                   help="keep embeddings in this .npz between runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _identities(args: argparse.Namespace, root: Path) -> dict[str, list[Path]]:
    from chalicelib.evaluation.openset import list_identities, select_identities

    return select_identities(list_identities(root), SUBSETS[args.identities], args.limit)


def cmd_eval(args: argparse.Namespace) -> int:
    if (args.differentials_out or args.threshold) and not args.groups:
        print("--threshold and --differentials-out need --groups", file=sys.stderr)
        return 2
    from chalicelib.evaluation.det import plot_det
    from chalicelib.evaluation.openset import (
        FaceCache,
        calibration_check,
        det_curve,
        evaluate,
        pipeline_key,
        write_json,
    )
    from chalicelib.matching.calibration import load_stats
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    settings = Settings.from_env()
    model_id = embedding_id(settings)
    stats = load_stats(model_id, args.stats)
    identities = _identities(args, args.data)
    cache = FaceCache(model_id, args.cache, pipeline_key(settings))
    result = evaluate(
        args.data, seed=args.seed, enroll=args.enroll, watchlist_size=args.watchlist_size,
        target_fpir=args.target_fpir, settings=settings, stats=stats, workers=args.workers,
        cache=cache, identities=identities, progress=not args.quiet,
        probe_faces=args.probe_faces,
    )
    report = result.report
    report["identities"] = args.identities
    if args.operating_size:
        _at_operating_size(report, stats, result.scores, args.operating_size)
    if args.check_targets:
        from chalicelib.evaluation.openset import embed_images

        paths = [p for v in identities.values() for p in v]
        faces = embed_images(paths, settings, cache, workers=args.workers, progress=False)
        report["calibration_check"] = calibration_check(
            identities, faces, stats, args.check_targets, args.check_sizes,
            enroll=args.enroll, repeats=args.repeats, seed=args.seed,
            central_only=args.probe_faces == "labelled", min_off_list=args.min_off_list)
    fpir, fnir = det_curve(result.scores)
    cal = report["calibrated"]
    assert isinstance(cal, dict)
    plot_det(
        args.det,
        [(f"enroll {args.enroll}, gallery {report['n_gallery']}", fpir, fnir)],
        [(f"calibrated, target {cal['target_fpir']}", float(cal["measured_fpir"] or 0.0),
          1.0 - float(cal["tpir"] or 0.0))],
        title=f"Open-set 1:N identification, seed {args.seed}",
        subtitle=f"embedding space {model_id}",
    )
    _print_eval(report, args.det)
    if args.groups:
        _eval_groups(args, result.scores, report)
    if args.json:
        write_json(args.json, report)
    return 0


def _at_operating_size(report: dict, stats: dict, scores: object, size: int) -> None:
    """The operating points at the thresholds for a list of `size` subjects (the gallery's mix
    of reference counts, scaled), with TPIR still measured on this gallery's mated probes."""
    from chalicelib.evaluation.openset import operating_points, scaled_mix

    mix = scaled_mix(report["calibrated"]["template_sizes"], size)
    report["operating_size"] = {"subjects": size, "template_sizes": mix}
    report["operating_points"] = operating_points(stats, mix, scores)  # type: ignore[arg-type]


def _eval_groups(args: argparse.Namespace, scores: object, report: dict) -> None:
    from chalicelib.evaluation.groups import differentials_report, format_report, load_groups
    from chalicelib.evaluation.openset import write_json
    from chalicelib.matching.differentials import record_from_report

    cal = report["calibrated"]
    thresholds = [(f"calibrated: target FPIR {cal['target_fpir']}, gallery "
                   f"{report['n_gallery']}", float(cal["threshold"]))]
    thresholds += [("given", t) for t in args.threshold]
    groups = differentials_report(scores, load_groups(args.groups), thresholds,  # type: ignore[arg-type]
                                  seed=args.seed)
    report["groups"] = groups
    print(format_report(groups))
    if args.differentials_out:
        write_json(args.differentials_out, record_from_report(groups, report["model_id"],
            evaluation={"data": args.data.name, "groups_file": args.groups.name,
                        "seed": args.seed, "enroll": args.enroll,
                        "n_gallery": report["n_gallery"], "n_mated": report["n_mated"],
                        "n_nonmated": report["n_nonmated"]}))
        print(f"differentials record: {args.differentials_out}")


def _print_eval(report: dict, det_path: Path) -> None:
    out = sys.stdout
    print(f"model {report['model_id']}  seed {report['seed']}  enroll {report['enroll']}", file=out)
    print(f"gallery {report['n_gallery']}  mated probes {report['n_mated']}  "
          f"non-mated probes {report['n_nonmated']}", file=out)
    print(f"rank-1 {report['rank1']:.4f}", file=out)
    for k, v in report["tpir_at_fpir"].items():
        print(f"TPIR @ FPIR {k:<6} {v:.4f}", file=out)
    c = report["calibrated"]
    print(f"calibrated: target FPIR {c['target_fpir']}  threshold {c['threshold']:.4f}  "
          f"measured FPIR {c['measured_fpir']:.5f} ({c['false_alerts']} false alerts)  "
          f"TPIR {c['tpir']:.4f}  (alerts on unjudged bystander faces: "
          f"{c['bystander_alerts']})", file=out)
    if "operating_size" in report:
        print(f"operating points at a watchlist of {report['operating_size']['subjects']} "
              f"subjects {report['operating_size']['template_sizes']} (TPIR on this gallery's "
              "mated probes):", file=out)
    for row in report.get("operating_points", []):
        lo, hi = row["expected_fpir_95"]
        tlo, thi = row["tpir_95"] or (float("nan"), float("nan"))
        basis = "extrapolated" if row["extrapolated"] else "counted"
        if not row.get("checked_on_unseen", True):
            basis += "; not checked on unseen identities"
        print(f"operating point: target {row['target_fpir']:<9.3g} threshold "
              f"{row['threshold']:.4f}  expected FPIR {row['expected_fpir']:.2g} (95% "
              f"{lo:.2g}-{hi:.2g}, {basis})  TPIR {row['tpir']:.4f} (95% {tlo:.4f}-{thi:.4f})"
              f"  measured {row['false_alerts']} of {row['nonmated']} non-mated", file=out)
    for row in report.get("calibration_check", []):
        print(_check_line(row), file=out)
    print(f"DET curve: {det_path}", file=out)


def _check_line(row: dict) -> str:
    lo, hi = row["ratio_interval"]
    return (f"check: target {row['target_fpir']:<7g} watchlist {row['gallery_size']:<5} "
            f"threshold {row['threshold']:.4f}  measured {row['measured_fpir_per_identity']:.2e}"
            f" per identity ({row['false_positives']} of {row['nonmated_searches']} searches, "
            f"{row['repeats']} draws, >= {row['off_list_identities_min']} off the list)  "
            f"ratio {row['ratio_per_identity']:.2f} (95% {lo:.2f}-{hi:.2f})")


def cmd_calibrate(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from chalicelib.evaluation.openset import (
        FaceCache,
        embed_images,
        labelled_faces,
        pipeline_key,
    )
    from chalicelib.matching.calibration import fit_impostor_model
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    settings = Settings.from_env()
    if args.measure_centre:
        settings = dataclasses.replace(settings, embed_centre=False)
    model_id = embedding_id(settings)
    identities = _identities(args, args.background)
    cache = FaceCache(model_id, args.cache, pipeline_key(settings))
    paths = [p for v in identities.values() for p in v]
    faces = embed_images(paths, settings, cache, workers=args.workers, progress=not args.quiet)
    embs, labels = labelled_faces(identities, faces)
    source = _background_source(args, sorted(identities), len(paths), len(embs))
    if args.measure_centre:
        model_id, faces, embs = _measure_centre(args.measure_centre, settings, embs, labels,
                                                faces, source)
    stats = fit_impostor_model(np.stack(embs), labels, model_id=model_id, source=source)
    out = args.out or Path(f"calibration-{model_id}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(stats, separators=(",", ":")) + "\n")
    _print_calibration(stats, model_id, len(embs), identities, faces)
    print(f"wrote {out}")
    return 0


def _background_source(args: argparse.Namespace, names: list[str], n_images: int,
                       n_faces: int) -> dict:
    """What the statistics were fitted on, written into them."""
    return {
        "description": args.description or f"{args.background.name}: {args.identities} "
                       f"identities",
        "identity_rule": {
            "all": "every identity folder",
            "stats-half": "identity folders whose sha256(name)[0] is even (name_half == 0)",
            "holdout-half": "identity folders whose sha256(name)[0] is odd (name_half == 1)",
        }[args.identities] + (f", first {args.limit} by name" if args.limit else ""),
        "n_identities": len(names),
        "n_images": n_images,
        "n_faces_used": n_faces,
        "face_choice": "the most central large face, one per image, where it passed the "
                       "quality gate",
        "identities_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
        "identities": names,
    }


def _print_calibration(stats: dict, model_id: str, n_faces: int,
                       identities: dict[str, list[Path]], faces: dict) -> None:
    from chalicelib.evaluation.openset import calibration_check
    from chalicelib.matching.calibration import thresholds_table

    n_identities = len(identities)
    sizes_fit = ", ".join(f"{k} images: shift {m['shift']:+.4f}, scale {m['scale']:.4f}"
                          for k, m in stats["templates"].items() if k != "1")
    one = stats["templates"]["1"]
    print(f"impostor model for {model_id}: {n_faces} faces of {n_identities} identities, "
          f"{one['counted']['total']} single-image impostor scores; tail shape "
          f"xi={one['tail']['xi']:.3f}; larger templates {sizes_fit}")
    for row in thresholds_table(stats, [0.01, 0.001, 0.0001], [100, 1000, 10000]):
        print(f"threshold for target {row['target_fpir']:<7} watchlist {row['gallery_size']:<6}"
              f" {row['threshold']:.4f}")
    # A watchlist must leave enough identities outside it to measure a rate on.
    sizes = [n for n in (100, 200, 400) if n_identities - n >= 100]
    if sizes:
        print("check on simulated watchlists of these background identities (in-sample):")
        for row in calibration_check(identities, faces, stats, [0.01, 0.001], sizes,
                                     repeats=100, central_only=True):
            print("  " + _check_line(row))


def cmd_calibrate_mated(args: argparse.Namespace) -> int:
    import numpy as np

    from chalicelib.evaluation.mated import check_model, write_model
    from chalicelib.evaluation.openset import (
        FaceCache,
        embed_images,
        labelled_faces,
        list_identities,
        pipeline_key,
        select_identities,
    )
    from chalicelib.matching.calibration import STATS_DIR
    from chalicelib.matching.expected_tpir import MatedModel, fit_mated_model, mated_model_path
    from chalicelib.settings import Settings
    from chalicelib.vision.factory import embedding_id

    settings = Settings.from_env()
    model_id = embedding_id(settings)
    everyone = list_identities(args.background)
    identities = select_identities(everyone, SUBSETS[args.identities], args.limit)
    checked = (select_identities(everyone, SUBSETS[args.check], args.limit)
               if args.check else {})
    cache = FaceCache(model_id, args.cache, pipeline_key(settings))
    paths = [p for group in (identities, checked) for v in group.values() for p in v]
    faces = embed_images(paths, settings, cache, workers=args.workers, progress=not args.quiet)
    embs, labels = labelled_faces(identities, faces)
    model = fit_mated_model(np.stack(embs), labels, model_id=model_id, source={
        "description": f"{args.background.name}: {args.identities} identities",
        "n_identities": len(identities), "n_faces_used": len(embs)})
    out = args.out or mated_model_path(STATS_DIR, model_id)
    write_model(out, model)
    print(f"mated model for {model_id}: {len(embs)} faces of {len(identities)} identities; "
          f"agreement cuts {model['agreement_cut']}; wrote {out}")
    if checked:
        c_embs, c_labels = labelled_faces(checked, faces)
        print(f"check on {args.check} ({len(checked)} identities): predicted vs measured TPIR")
        for row in check_model(MatedModel.from_dict(model), c_embs, c_labels):
            print(f"  {row['curve']:<7} threshold {row['threshold']:.4f}  predicted "
                  f"{row['predicted']:.3f}  measured {row['measured']:.3f}  "
                  f"({row['identities']} identities)")
    return 0


def _measure_centre(
    path: Path, settings: Settings, embs: list, labels: list[str], faces: dict, source: dict
) -> tuple[str, dict, list]:
    """Measure and write the centre; return the centred embedding space's id and faces."""
    import dataclasses

    import numpy as np

    from chalicelib.vision.centre import centre_document, centre_from_document, measure_centre
    from chalicelib.vision.embed import l2_normalize, model_id_for
    from chalicelib.vision.factory import recognizer_spec, space_with

    file_id = model_id_for(recognizer_spec(settings))
    doc = centre_document(measure_centre(np.stack(embs), labels), file_id,
                          {k: v for k, v in source.items() if k != "identities"})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    centre = centre_from_document(doc, file_id)  # exactly the numbers the pipeline will load
    print(f"embedding centre of {source['n_identities']} identities written to {path}")
    centred = {k: dataclasses.replace(f, embeddings=l2_normalize(f.embeddings - centre))
               if f.n else f for k, f in faces.items()}
    space = space_with(settings, centre)
    return space, centred, list(l2_normalize(np.stack(embs) - centre))
