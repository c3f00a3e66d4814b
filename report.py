"""Listening reports: pages a user opens to hear and see separations, with no server and no network.

- evaluate.py (and postprocess.py) write results_dir/report.html: the summary, a histogram of
  per-utterance SI-SNRi, a sortable table of every scored utterance (worst first) and, for the N
  worst and N best, players for the mixture, each estimated talker and each reference, with their
  spectrograms. The page is made from the files beside it (per_utterance.csv, summary.json and
  report_audio/), so what it shows is what those files hold.
- separate.py writes OUT_DIR/listen.html: each input and its separated talkers, with spectrograms.

Both are one template (PAGE) filled with escaped text. Audio is referenced relative to the page
(copy the folder, not only the page); spectrograms and the histogram are embedded, so the page draws
without its audio folder. The few lines of JavaScript sort the table.
"""
import base64
import heapq
import html
import io
import json
import os
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import soundfile as sf
from tqdm import tqdm

from errors import UserError
from fileio import atomic_path
from results import AUDIO_DIR, ITEMS, REPORT, read_evaluation, row_id, row_key, table_name

GENERATOR = "dprnn-mindspore listening report"  # marks pages this module wrote: only those are replaced
LISTEN = "listen.html"
SPECTROGRAM_SECONDS = 30

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{generator}">
<title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1100px; margin: 0 auto; padding: 10px; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; }}
h3 {{ font-size: 1em; overflow-wrap: anywhere; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }}
dt {{ font-weight: 600; }} dd {{ margin: 0; overflow-wrap: anywhere; }}
.note {{ background: #fff4c2; padding: 6px 10px; border-radius: 4px; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: 6px 10px; margin: 10px 0; }}
.players {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 4px 12px; }}
.players figure {{ margin: 0; }} figcaption {{ font-size: 0.9em; color: #555; }}
audio {{ width: 100%; }} img, svg {{ max-width: 100%; height: auto; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; overflow-wrap: anywhere; }}
th button {{ font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }}
th[aria-sort=ascending] button::after {{ content: " \\25B2"; }}
th[aria-sort=descending] button::after {{ content: " \\25BC"; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
<script>
document.querySelectorAll("table.sortable").forEach(function (table) {{
  table.querySelectorAll("th").forEach(function (th, column) {{
    th.querySelector("button").addEventListener("click", function () {{
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) {{ other.removeAttribute("aria-sort"); }});
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.from(table.tBodies[0].rows);
      rows.sort(function (a, b) {{
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        if (x === "" || y === "") return (x === "") - (y === "");
        var order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
        return ascending ? order : -order;
      }});
      rows.forEach(function (row) {{ table.tBodies[0].appendChild(row); }});
    }});
  }});
}});
</script>
</body>
</html>
"""


def esc(value):
    return html.escape(str(value), quote=True)


def href(path, page_dir):
    """A link from a page in page_dir to path, relative and percent-encoded (names with spaces,
    '#', '?', '&' or unicode stay one file name)."""
    return esc(quote(Path(os.path.relpath(path, page_dir)).as_posix()))


def page(title, body):
    return PAGE.format(generator=GENERATOR, title=esc(title), body=body)


def check_replaceable(path):
    """A page at `path` is replaced only if this module wrote it; the user's own file of that name
    is refused before any work."""
    path = Path(path)
    if path.exists() and (path.is_dir() or GENERATOR not in path.read_text(errors="replace")[:2000]):
        raise UserError(f"{path} exists and is not a report this program wrote: move it, or choose "
                        f"another output folder")


def check_audio_folder(results_dir):
    folder = Path(results_dir) / AUDIO_DIR
    if folder.exists() and not (folder / ITEMS).is_file():
        raise UserError(f"{folder} exists and was not written by evaluate.py (no {ITEMS}): move it, "
                        f"or choose another --results_dir")


def spectrograms(named_signals, sample_rate, image_format="jpeg"):
    """Image bytes: the spectrogram of each (name, samples [T]) signal, stacked, first 30 s. Pages
    embed JPEG (a spectrogram is noise to PNG's compression: 6x smaller)."""
    import librosa
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(named_signals), 1, figsize=(8, 1.7 * len(named_signals)), sharex=True,
                             squeeze=False)
    for ax, (name, samples) in zip(axes[:, 0], named_signals):
        samples = np.asarray(samples[:SPECTROGRAM_SECONDS * sample_rate], np.float32)
        spectrum = librosa.amplitude_to_db(np.abs(librosa.stft(samples, n_fft=512, hop_length=128)),
                                           ref=max(np.abs(samples).max(), 1e-8) * 64)
        ax.imshow(spectrum, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                  extent=(0, len(samples) / sample_rate, 0, sample_rate / 2000))
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    encoded = io.BytesIO()
    quality = {"pil_kwargs": {"quality": 75}} if image_format == "jpeg" else {}
    fig.savefig(encoded, dpi=70, format=image_format, **quality)
    plt.close(fig)
    return encoded.getvalue()


def read_for_spectrogram(path):
    """(samples [T] of a file's first 30 s, channels averaged, its sample rate)."""
    rate = sf.info(str(path)).samplerate
    audio = sf.read(str(path), frames=SPECTROGRAM_SECONDS * rate, dtype="float32", always_2d=True)[0]
    return audio.mean(1), rate


def files_spectrograms(paths, image_format="jpeg"):
    """spectrograms() of audio files, each titled with its name (at the first file's rate)."""
    signals = [read_for_spectrogram(path) for path in paths]
    return spectrograms([(Path(p).name, s) for p, (s, _) in zip(paths, signals)], signals[0][1], image_format)


def image(jpeg, alt):
    return f'<img alt="{esc(alt)}" src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}">'


def histogram_svg(values, label, counted):
    """An inline SVG histogram of `values` (1-dB bins) with their mean marked; `counted` names what
    the bars count."""
    values = np.asarray(values, np.float64)
    low, high = np.floor(values.min()), np.ceil(values.max())
    edges = np.arange(low, max(high, low + 1) + 1)
    counts = np.histogram(values, edges)[0]
    width, height, left, bottom = 640, 220, 40, 30
    bar, scale = (width - left - 10) / len(counts), (height - bottom - 20) / counts.max()
    parts = [f'<svg class="histogram" viewBox="0 0 {width} {height}" width="{width}" role="img" '
             f'aria-label="{esc(label)} histogram" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#444"/>']
    for k, count in enumerate(counts):
        x, h = left + k * bar, count * scale
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" width="{max(bar - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="#3a6ea5"><title>{edges[k]:g} to {edges[k + 1]:g} dB: '
                     f'{count}</title></rect>')
    for k in range(0, len(edges), max(1, len(edges) // 10)):
        parts.append(f'<text x="{left + k * bar:.1f}" y="{height - 12}" font-size="11" '
                     f'text-anchor="middle">{edges[k]:g}</text>')
    mean_x = left + (values.mean() - low) * bar
    parts += [f'<line x1="{mean_x:.1f}" y1="12" x2="{mean_x:.1f}" y2="{height - bottom}" stroke="#c33" '
              f'stroke-dasharray="4 3"/>',
              f'<text x="{mean_x + 4:.1f}" y="14" font-size="11" fill="#c33">mean {values.mean():.2f} dB</text>',
              f'<text x="4" y="14" font-size="11">{counts.max()} {esc(counted)}</text>',
              f'<text x="{width - 10}" y="{height - 28}" font-size="11" text-anchor="end">{esc(label)} (dB)</text>',
              "</svg>"]
    return "\n".join(parts)


def scatter_svg(points, x_label, y_label):
    """An inline SVG of (x, y) points in dB with the diagonal y = x: the points above it (blue)
    scored higher on y, those below (orange) lower."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    low, high = np.floor(points.min() - 0.5), np.ceil(points.max() + 0.5)  # no point on the frame
    size, margin = 320, 40
    scale = (size - margin - 10) / (high - low)

    def at(x, y):
        return margin + (x - low) * scale, size - margin - (y - low) * scale
    parts = [f'<svg class="scatter" viewBox="0 0 {size} {size}" width="{size}" role="img" '
             f'aria-label="{esc(y_label)} against {esc(x_label)}" xmlns="http://www.w3.org/2000/svg">',
             '<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#888" stroke-dasharray="4 3"/>'.format(
                 *at(low, low), *at(high, high)),
             f'<rect x="{margin}" y="10" width="{size - margin - 10}" height="{size - margin - 10}" fill="none" '
             f'stroke="#444"/>']
    for x, y in points:
        cx, cy = at(x, y)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{"#3a6ea5" if y > x else "#d9822b"}"/>')
    parts += [f'<text x="{margin}" y="{size - margin + 14}" font-size="11" text-anchor="middle">{low:g}</text>',
              f'<text x="{size - 10}" y="{size - margin + 14}" font-size="11" text-anchor="end">{high:g}</text>',
              f'<text x="{margin - 4}" y="{size - margin}" font-size="11" text-anchor="end">{low:g}</text>',
              f'<text x="{margin - 4}" y="20" font-size="11" text-anchor="end">{high:g}</text>',
              f'<text x="{(size + margin) / 2}" y="{size - 8}" font-size="11" text-anchor="middle">'
              f'{esc(x_label)} (dB)</text>',
              f'<text x="12" y="{(size - margin) / 2}" font-size="11" text-anchor="middle" '
              f'transform="rotate(-90 12 {(size - margin) / 2})">{esc(y_label)} (dB)</text>',
              "</svg>"]
    return "\n".join(parts)


class Extremes:
    """The n lowest- and the n highest-scoring items by SI-SNRi seen, with their audio: what a
    listener wants to hear first, kept while scoring, so memory holds 2n items whatever the test
    set's size."""

    def __init__(self, n):
        self.n, self.seen, self.worst, self.best = n, 0, [], []

    def offer(self, row, mixture, sources, estimates):
        item = (row["SI-SNRi"], self.seen, row, mixture, sources, estimates)
        self.seen += 1
        if self.n:
            heapq.heappush(self.worst, (-item[0], -item[1], item))
            heapq.heappush(self.best, (item[0], item[1], item))
            for heap in (self.worst, self.best):
                if len(heap) > self.n:
                    heapq.heappop(heap)

    def items(self):
        """(rank, row, mixture, sources, estimates): the worst first, then the best (best first);
        an item among both (a test set of fewer than 2n) is listed once, as worst."""
        worst = sorted((entry[2] for entry in self.worst), key=lambda item: (item[0], item[1]))
        taken = {item[1] for item in worst}
        best = sorted((entry[2] for entry in self.best if entry[2][1] not in taken), key=lambda item: -item[0])
        return [("worst", *item[2:]) for item in worst] + [("best", *item[2:]) for item in best]


def listening_level(signal):
    """A signal scaled down as a whole if it would exceed full scale in 16 bits (never clipped)."""
    peak = float(np.abs(signal).max(initial=0.0))
    return signal / peak * 0.999 if peak > 0.999 else signal


def write_item_audio(folder, extremes, sample_rate):
    """The listened items' audio as 16-bit wavs in folder (one sub-folder per item) and ITEMS.

    The estimates, whose scale the network does not fix, are brought to their level in the mixture
    by the least-squares gains separate.py uses; no gain changes an estimate's SI-SNR."""
    from separation import mixture_gains  # here: separation loads MindSpore, which screenshots need not
    listed = []
    for index, (rank, row, mixture, sources, estimates) in enumerate(extremes.items()):
        name = f"{index:02d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', str(row['mixture_ID']))[:40]}"
        (folder / name).mkdir()
        estimates = estimates * mixture_gains(estimates, mixture)[:, None]
        signals = {"mixture.wav": mixture}
        signals.update({f"estimate_{c + 1}.wav": estimate for c, estimate in enumerate(estimates)})
        signals.update({f"reference_{c + 1}.wav": source for c, source in enumerate(sources)})
        for file_name, signal in signals.items():
            sf.write(str(folder / name / file_name), listening_level(np.asarray(signal, np.float32)), sample_rate,
                     subtype="PCM_16")
        listed.append({"key": row_key(row), "rank": rank, "folder": name, "files": list(signals)})
    (folder / ITEMS).write_text(json.dumps(listed, indent=1) + "\n")


def decibels(value):
    return f"{float(value):.2f}"


def summary_list(summary, rows, evaluated, table_name, compared=()):
    """The <dl> of what was evaluated, how, and the averages; `compared`: more (term, description)
    pairs (Comparison.summary_entries)."""
    si_snri = [float(r["SI-SNRi"]) for r in rows]
    entries = [("SI-SNRi, mean / median", f"{np.mean(si_snri):.2f} / {np.median(si_snri):.2f} dB")]
    if "SDRi" in rows[0]:
        sdri = [float(r["SDRi"]) for r in rows]
        entries.append(("SDRi, mean / median", f"{np.mean(sdri):.2f} / {np.median(sdri):.2f} dB"))
    scored = f"{summary.get('utterances', len(rows))} utterances"
    if "segments" in summary:
        scored = f"{summary['segments']} segments of {scored}"
    if summary.get("dropped_utterances"):
        scored += f", {summary['dropped_utterances']} too short and dropped"
    settings = summary.get("model_args")
    entries += [("Protocol", summary.get("protocol", "not recorded")), ("Scored", scored),
                ("Model", summary.get("model", "not recorded")),
                ("Model settings", ", ".join(f"{k} {v}" for k, v in settings.items()) if settings else "not recorded"),
                ("Test set", summary.get("test_set", "not recorded")),
                ("Evaluated", evaluated.strftime("%Y-%m-%d %H:%M")), *compared]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in entries)
    return f'<dl>{items}<dt>Results</dt><dd><a href="{esc(quote(table_name))}">{esc(table_name)}</a></dd></dl>'


def score_columns(rows):
    """(CSV column, heading, is a score) of the results table, as the page shows them."""
    names = [("mixture_ID", "utterance", False), ("start", "start sample", False), ("seconds", "seconds", False),
             ("SI-SNRi", "SI-SNRi (dB)", True), ("SDRi", "SDRi (dB)", True), ("SI-SNR", "SI-SNR (dB)", True)]
    return [name for name in names if name[0] in rows[0]]


def results_table(rows, listened, comparison=None):
    """Every scored item, worst SI-SNRi first; each cell's data-value is the CSV's own text, which
    the sorting reads; items with audio link to their players. With a Comparison, two more columns:
    the other evaluation's SI-SNRi and the change to this one (empty where it has no such item)."""
    columns = score_columns(rows)
    if comparison:
        columns += [("compared", "compared SI-SNRi (dB)", True), ("change", "change (dB)", True)]
        changes = comparison.changes(rows)
        rows = [{**row, "compared": comparison.si_snri.get(row_id(row), ""),
                 "change": repr(changes[row_id(row)]) if row_id(row) in changes else ""} for row in rows]
    head = "".join(f'<th{" aria-sort=ascending" if name == "SI-SNRi" else ""}><button type="button">'
                   f"{esc(heading)}</button></th>" for name, heading, _ in columns)
    lines = []
    for row in sorted(rows, key=lambda r: float(r["SI-SNRi"])):
        anchor = listened.get(row_id(row))
        cells = []
        for name, _, is_score in columns:
            shown = decibels(row[name]) if is_score and row[name] != "" else esc(row[name])
            if name == "mixture_ID" and anchor:
                shown += f' <a href="#{anchor}">listen</a>'
            cells.append(f'<td data-value="{esc(row[name])}">{shown}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table class="sortable" id="results"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(lines)}</tbody></table></div>')


def players(files, page_dir, captions):
    """A grid of labelled audio players for files, linked relative to a page in page_dir."""
    figures = "".join(f'<figure><figcaption>{esc(caption)}</figcaption><audio controls preload="metadata" '
                      f'src="{href(path, page_dir)}"></audio></figure>' for path, caption in zip(files, captions))
    return f'<div class="players">{figures}</div>'


def item_card(anchor, title, scores, files, page_dir, audio_files, captions, sample_rate):
    """One utterance to listen to: its scores, players and spectrograms (read from audio_files,
    which may be the players' files still under a temporary name)."""
    signals = [(caption, sf.read(str(path), dtype="float32")[0]) for path, caption in zip(audio_files, captions)]
    return (f'<section class="card" id="{esc(anchor)}"><h3>{esc(title)}</h3><p>{esc(scores)}</p>'
            + players(files, page_dir, captions)
            + image(spectrograms(signals, sample_rate), f"spectrograms of {title}") + "</section>")


def evaluation_report(evaluation, audio, results_dir, evaluated, comparison=None):
    """(report.html's text, its notes) from a results.Evaluation and the audio folder it lists
    (AUDIO_DIR, possibly still under a temporary name); links use the final names. A Comparison adds
    its scores: the change in the summary, a scatter of both SI-SNRi and two columns of the table."""
    summary, rows, items = evaluation.summary, evaluation.rows, evaluation.items
    table = table_name(summary)
    notes = [] if items else ["report_items is 0: this report has no players"]
    by_key = {row_id(r): r for r in rows}
    listened = {row_id(item["key"]): f"item-{k}" for k, item in enumerate(items)}
    sections = {"worst": [], "best": []}
    for k, item in enumerate(items):
        row = by_key.get(row_id(item["key"]))
        if row is None:
            raise UserError(f"{Path(audio) / ITEMS} lists {item['key']}, which {table} does not hold: "
                            f"the folder mixes two evaluations; run evaluate.py again")
        captions = ["mixture"] + [Path(f).stem.replace("_", " ") for f in item["files"][1:]]
        title = item["key"]["mixture_ID"] + (f" from sample {item['key']['start']}" if "start" in item["key"] else "")
        scores = f"SI-SNRi {decibels(row['SI-SNRi'])} dB"
        if "SDRi" in row:
            scores += f", SDRi {decibels(row['SDRi'])} dB"
        files = [Path(results_dir) / AUDIO_DIR / item["folder"] / f for f in item["files"]]
        sources = [Path(audio) / item["folder"] / f for f in item["files"]]
        sections[item["rank"]].append(item_card(f"item-{k}", title, scores, files, results_dir, sources, captions,
                                                summary["sample_rate"]))
    unit = "segment" if "start" in rows[0] else "utterance"
    compared = []
    if comparison:
        comparison.check(summary["protocol"], summary["sample_rate"])
        compared = comparison.summary_entries(rows, unit, summary.get("model_args"))
    body = [summary_list(summary, rows, evaluated, table, compared)]
    body += [f'<p class="note">{esc(note)}</p>' for note in notes]
    body += [f"<h2>SI-SNRi per {unit}</h2>", histogram_svg([float(r["SI-SNRi"]) for r in rows], "SI-SNRi", f"{unit}s")]
    if comparison:
        changes = comparison.changes(rows)
        points = [(float(comparison.si_snri[row_id(r)]), float(r["SI-SNRi"])) for r in rows
                  if row_id(r) in changes]
        here, there = Path(summary.get("model", "this evaluation")).name, Path(comparison.name).name
        body += [f"<h2>SI-SNRi per {unit}, against {esc(comparison.name)}</h2>",
                 f"<p>One point per {unit}: above the dashed diagonal (blue) {esc(here)} scored it higher than "
                 f"{esc(there)}, below it (orange) lower.</p>", scatter_svg(points, there, here)]
    for rank in ("worst", "best"):
        if sections[rank]:
            body += [f"<h2>The {len(sections[rank])} {rank}</h2>"] + sections[rank]
    body += [f"<h2>Every {unit} ({len(rows)}), worst first</h2>",
             results_table(rows, listened, comparison)]
    return page("Separation results", "\n".join(body)), notes


def write_evaluation_report(results_dir, comparison=None):
    """report.html from what results_dir holds (evaluate.py --report_only), with a Comparison's
    scores if given: the notes it made."""
    results_dir = Path(results_dir)
    evaluation = read_evaluation(results_dir, "--results_dir")
    check_replaceable(results_dir / REPORT)
    check_audio_folder(results_dir)
    made = datetime.fromtimestamp((results_dir / table_name(evaluation.summary)).stat().st_mtime)
    text, notes = evaluation_report(evaluation, results_dir / AUDIO_DIR, results_dir, made, comparison)
    with atomic_path(results_dir / REPORT) as tmp:
        Path(tmp).write_text(text)
    return notes


def listening_page(entries, page_dir):
    """listen.html's text: for each (input, [its separated talkers]) the players and spectrograms."""
    cards = []
    for k, (source, outputs) in enumerate(tqdm(entries, desc="listen.html", unit="file", leave=False)):
        captions = ["mixture (the input)"] + [f"talker {c + 1}" for c in range(len(outputs))]
        paths = [source] + list(outputs)
        cards.append(f'<section class="card" id="file-{k}"><h3>{esc(Path(source).name)}</h3>'
                     + players(paths, page_dir, captions)
                     + image(files_spectrograms(paths), f"spectrograms of {Path(source).name}") + "</section>")
    intro = (f"<p>{len(entries)} recording{'s' * (len(entries) != 1)} separated. The players play the files "
             f"themselves: copy this folder (and the inputs, for the mixtures) to listen elsewhere.</p>")
    return page("Separated recordings", intro + "\n".join(cards))


def write_listening_page(out_dir, entries):
    path = Path(out_dir) / LISTEN
    with atomic_path(path) as tmp:
        Path(tmp).write_text(listening_page(entries, out_dir))
    return path
