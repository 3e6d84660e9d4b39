"""The report's first screen: the verdict (who beats a single human rater) and how much of the catalog
each annotator labels beside the vibe's estimated base rate."""

from __future__ import annotations

import pandas as pd

from ..annotation import read_annotations
from ..artifacts import artifacts_of
from ..errors import VibesetError
from ..golden import workspace_golden
from ..metrics import fmt
from ..evaluation import catalog_calibration, rater_verdicts
from ..workspace import Workspace
from .charts import Bar, bar_chart
from .sections import Evaluation, Figure, Section, Table



def verdict_section(ev: Evaluation) -> Section:
    """Which annotators beat a single human rater, head-to-head, with 95% CIs; the student against its teacher."""
    golden = ev.report["golden"]
    section = Section(
        "verdict", "Verdict",
        f"Head-to-head on the golden {golden.get('split', 'test')} split: every annotator is scored on exactly the pairs a "
        "single human rater judged, against the consensus of the other raters (MCC; 95% CIs resample videos). "
        "'Beats' needs the intervals apart.",
    )
    verdicts = rater_verdicts(ev.report)
    if not verdicts:
        section.missing = "no annotator has been scored against a single human rater yet; 'vibeset run' does it"
        return section
    winners = [v for v in verdicts if v["word"] == "beats"]
    rater = f"{fmt(verdicts[0]['rater_mcc'], verdicts[0]['rater_ci'])}"
    if winners:
        names = ", ".join(f"{v['annotator']} (MCC {fmt(v['mcc'], v['ci'])})" for v in winners)
        section.lead.append(f"{len(winners)} of {len(verdicts)} annotators beat a single human rater (MCC {rater}): {names}.")
    else:
        best = max(verdicts, key=lambda v: v["mcc"] if v["mcc"] is not None else -2)
        ahead = [v for v in verdicts if v["word"] == "beats (CIs overlap)"]
        if ahead:
            names = ", ".join(f"{v['annotator']} (MCC {fmt(v['mcc'], v['ci'])})" for v in ahead)
            section.lead.append(f"{len(ahead)} of {len(verdicts)} annotators beat a single human rater (MCC {rater}) on the "
                                f"point estimate, with overlapping intervals: {names}.")
        else:
            section.lead.append(f"No annotator beats a single human rater (MCC {rater}) yet. The best, {best['annotator']}, "
                                f"reaches MCC {fmt(best['mcc'], best['ci'])}: it {best['word']} a single rater.")
    annotators = ev.report["annotators"]
    if "teacher" in annotators and "student" in annotators:
        teacher, student = (annotators[n]["micro"].get("roc_auc") for n in ("teacher", "student"))
        if teacher is not None and student is not None:
            section.lead.append(f"The student's AUC is {student:.3f}, {student - teacher:+.3f} against its teacher's {teacher:.3f}.")
    section.tables.append(Table(
        ["annotator", "verdict", "head-to-head MCC [95% CI]", "single rater MCC [95% CI]", "pairs", "all-pairs AUC [95% CI]"],
        [[v["annotator"], f"{v['word']} a single rater", fmt(v["mcc"], v["ci"]), fmt(v["rater_mcc"], v["rater_ci"]),
          fmt(v["n"]), fmt(v["auc"], v["auc_ci"])] for v in verdicts]))
    return section


def shares_labelled(workspace: Workspace) -> dict[str, pd.Series]:
    """Per annotations artifact: the share of the videos it labelled that it labels positive, per vibe."""
    catalog = artifacts_of(workspace)
    shares = {}
    for name in catalog.annotation_names():
        frame = read_annotations(catalog.annotations(name))
        shares[name] = frame.groupby("attribute")["label"].mean()
    return shares


def _flag(share: float | None, base: float | None) -> str:
    if share is None or base is None or base <= 0:
        return fmt(share)
    if share > 2 * base:
        return f"{fmt(share)} (over 2x)"
    if share < base / 2:
        return f"{fmt(share)} (under 1/2)"
    return fmt(share)


def shares_section(workspace: Workspace) -> Section:
    """Per vibe: the share of the catalog each annotator labels, beside the estimated base rate."""
    section = Section(
        "shares", "How much of the catalog each vibe labels",
        "A vibe labelled on far more (or far less) of the catalog than its base rate is miscalibrated, whatever its "
        "golden F1: restricted retrieval serves exactly these labels. Shares are over the videos each annotator labelled.",
    )
    try:
        shares = shares_labelled(workspace)
        calibrated = catalog_calibration(artifacts_of(workspace).get("student"))
    except VibesetError as err:
        section.missing = str(err)
        return section
    if not shares:
        section.missing = "no annotations yet; 'vibeset run' writes them"
        return section
    names = workspace.taxonomy.names
    prevalence = workspace_golden(workspace).pairs.groupby("attribute")["label"].mean() if workspace.config.judgements else pd.Series(dtype=float)
    if calibrated:
        base = {a: (calibrated["attributes"].get(a) or {}).get("base_rate") for a in names}
        base_name = f"estimated base rate ({calibrated.get('method', 'calibration')})"
    else:
        base = {a: prevalence.get(a) for a in names}
        base_name = "golden prevalence"
        section.notes.append("No catalog base-rate estimate yet (the student's calibration.json): the grey reference is the "
                             "golden set's prevalence, which reflects how the judged pairs were chosen, not the catalog.")
    series = {name: [Bar(float(v)) if (v := share.get(a)) is not None else None for a in names] for name, share in shares.items()}
    series[base_name] = [Bar(float(base[a])) if base.get(a) is not None else None for a in names]
    section.figures.append(Figure(
        "fig-shares", bar_chart(names, series, title="Share of the catalog labelled per vibe", axis="share of videos",
                                domain=(0.0, 1.0), palette={**{n: i for i, n in enumerate(shares)}, base_name: 7}),
        f"Share of videos each annotator labels positive, per vibe, beside the {base_name}."))
    section.tables.append(Table(
        ["vibe", "golden prevalence", base_name, *(f"{n} share" for n in shares)],
        [[a, fmt(prevalence.get(a)), fmt(base.get(a)), *(_flag(s.get(a), base.get(a)) for s in shares.values())] for a in names],
        "'over 2x' / 'under 1/2': more than twice, or less than half, the reference rate."))
    return section
