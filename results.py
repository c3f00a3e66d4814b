"""An evaluation's results as files, in one place: their names, the table's columns and how rows are
named, writing and reading them, and comparing two evaluations of one test set.

results_dir holds per_utterance.csv (the model zoo's protocol: per_segment.csv), one row per scored
item (mixture_ID[, start], seconds, SI-SNR, SI-SNRi[, SDR, SDRi]); summary.json, the averages and
what was scored how; report.html, the listening report drawn from these (report.py); and
report_audio/, the audio it plays, listed in report_audio/items.json. evaluate.py and postprocess.py
write them (evaluation.write_results), report.py draws from them, --compare_with reads another's.
"""
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import UserError

SUMMARY, REPORT, AUDIO_DIR = "summary.json", "report.html", "report_audio"
ITEMS = "items.json"  # in AUDIO_DIR: which items have audio, and their files
# the table's columns, in order; start: a zoo segment's first sample; SDR, SDRi: with --cal_sdr only
COLUMNS = ("mixture_ID", "start", "seconds", "SI-SNR", "SI-SNRi", "SDR", "SDRi")


def row_key(row):
    """What names a scored item in the results table: its mixture_ID, and a zoo segment's start."""
    return {name: str(row[name]) for name in ("mixture_ID", "start") if name in row}


def row_id(row):
    """row_key() as a dictionary key."""
    return tuple(row_key(row).items())


def table_name(summary):
    """The results table's name: per_utterance.csv, or per_segment.csv for the model zoo's protocol."""
    return "per_segment.csv" if "segments" in summary else "per_utterance.csv"


def write_table(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[column for column in COLUMNS if column in rows[0]])
        writer.writeheader()
        writer.writerows(rows)


def write_summary(path, summary):
    Path(path).write_text(json.dumps(summary, indent=1) + "\n")


@dataclass
class Evaluation:
    """One evaluation as its files hold it: summary.json, the table's rows (strings, as read) and the
    listened items (AUDIO_DIR/ITEMS: key, rank, folder, files)."""
    summary: dict
    rows: list
    items: list


def read_rows(table):
    with open(table, newline="") as f:
        return list(csv.DictReader(f))


def read(table, summary, items):
    """The Evaluation in these three files (under their final names or still temporary ones)."""
    return Evaluation(json.loads(Path(summary).read_text()), read_rows(table), json.loads(Path(items).read_text()))


def read_scores(results_dir, option):
    """(summary, the table's rows) in results_dir; `option` names the argument that gave the folder."""
    results_dir = Path(results_dir)
    path = results_dir / SUMMARY
    try:
        summary = json.loads(path.read_text())
        path = results_dir / table_name(summary)
        return summary, read_rows(path)
    except (OSError, ValueError, csv.Error) as err:
        raise UserError(f"{path}: {getattr(err, 'strerror', None) or err}: {option} must hold an evaluation "
                        f"(evaluate.py writes it)") from None


def read_evaluation(results_dir, option):
    """The Evaluation in results_dir, its listened items included."""
    summary, rows = read_scores(results_dir, option)
    path = Path(results_dir) / AUDIO_DIR / ITEMS
    try:
        return Evaluation(summary, rows, json.loads(path.read_text()))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: {getattr(err, 'strerror', None) or err}: {option} must hold a whole evaluation: "
                        f"run evaluate.py again") from None


class Comparison:
    """Another evaluation of the same test set (another checkpoint's results_dir, or the 310
    path's), whose scores a report shows beside its own, item by item."""

    def __init__(self, results_dir):
        self.results_dir = Path(results_dir)
        self.summary, rows = read_scores(results_dir, "--compare_with")
        self.si_snri = {row_id(row): row["SI-SNRi"] for row in rows}
        self.name = self.summary.get("model") or str(results_dir)

    def check(self, protocol, sample_rate):
        """Only scores of one protocol at one sample rate compare: a one-line error otherwise."""
        theirs = (self.summary["protocol"], self.summary["sample_rate"])
        if theirs != (protocol, sample_rate):
            raise UserError(f"{self.results_dir} was scored as {theirs[0]!r} at {theirs[1]} Hz, this evaluation "
                            f"as {protocol!r} at {sample_rate} Hz: --compare_with takes an evaluation by the "
                            f"same protocol of the same test set")

    def changes(self, rows):
        """{row_id: SI-SNRi here minus there} of the rows the other evaluation scored too."""
        return {row_id(r): float(r["SI-SNRi"]) - float(self.si_snri[row_id(r)])
                for r in rows if row_id(r) in self.si_snri}

    def summary_entries(self, rows, unit, settings):
        """(term, description) pairs for the report's summary; `settings`: this evaluation's model
        settings, which the other's are described against."""
        changes = list(self.changes(rows).values())
        if not changes:
            raise UserError(f"no {unit} of {self.results_dir} is in this evaluation: --compare_with takes an "
                            f"evaluation of the same test set")
        theirs = self.summary.get("model_args")
        if not (theirs and settings):
            described = "not recorded" + (" here" if theirs else "")
        else:
            differing = [f"{k} {v} (here {settings.get(k, 'not recorded')})"
                         for k, v in theirs.items() if settings.get(k) != v]
            described = ", ".join(differing) or "as here"
        described = (f"{self.name}: SI-SNRi {np.mean([float(v) for v in self.si_snri.values()]):.2f} dB on "
                     f"average; model settings {described}")
        change = (f"{np.mean(changes):+.2f} dB on average over the {len(changes)} {unit}s both scored: "
                  f"higher on {sum(c > 0 for c in changes)}, lower on {sum(c < 0 for c in changes)} "
                  f"(at most {max(changes):+.2f} and {min(changes):+.2f} dB)")
        unmatched = [(len(rows) - len(changes), "only here"), (len(self.si_snri) - len(changes), "only there")]
        if any(count for count, _ in unmatched):
            change += "; " + ", ".join(f"{count} {where}" for count, where in unmatched)
        return [("Compared with", described), ("SI-SNRi change", change)]
