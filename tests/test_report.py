"""The listening reports (report.py) as a user gets them: evaluate.py's report.html and separate.py's
listen.html, opened in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Without the browser these tests fail with the command that installs it: they never skip."""
import csv
import hashlib
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import mindspore as ms
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import browser
import report
from checkpoint import build_network
from config import UserError, load_config
from helpers import TINY_MODEL, script_main
from librimix import preprocess
from metrics import score
from results import Comparison

evaluate_main = script_main("evaluate.py")
separate_main = script_main("separate.py")
HOSTILE_ID = "<script>alert(1)</script>"
HOSTILE_FILE = '<img src=x onerror=alert(1)> & "q" #1?.wav'
BAR = (0x3a, 0x6e, 0xa5)  # the histogram's bar colour


class Page(HTMLParser):
    """What a report holds: the results table's rows (each cell's data-value), audio sources, texts."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.audio, self.text, self.scripts, self.in_table = [], [], [], 0, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "results":
            self.in_table = True
        elif tag == "tbody":
            self.in_table = self.in_table and "body"
        elif tag == "tr" and self.in_table == "body":
            self.rows.append([])
        elif tag == "td" and self.in_table == "body":
            self.rows[-1].append(attrs["data-value"])
        elif tag == "audio":
            self.audio.append(attrs["src"])
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_table = False

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def evaluated(librimix, tmp_path_factory):
    """A tiny model evaluated (with SDR) on the test split, whose first mixture_ID is an HTML
    injection: (results_dir, the LibriMix copy)."""
    work = tmp_path_factory.mktemp("report")
    corpus = work / "librimix"
    shutil.copytree(librimix, corpus)
    table = corpus / "metadata" / "mixture_test_mix_clean.csv"
    rows = list(csv.reader(table.open()))
    rows[1][0] = HOSTILE_ID
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    preprocess(corpus, work / "data", load_config(["--data_dir", str(work / "data")], verbose=False))
    cfg = load_config(TINY_MODEL, verbose=False)
    ms.set_seed(5)
    ms.save_checkpoint(build_network(cfg.group("model")), str(work / "tiny.ckpt"))
    evaluate_main(["--config_path", "/dev/null", "--ckpt_path", str(work / "tiny.ckpt"), "--data_dir",
                   str(work / "data"), "--results_dir", str(work / "results"), "--cal_sdr", "--report_items", "1",
                   *TINY_MODEL])
    return work / "results", corpus


@pytest.fixture(scope="module")
def compared(evaluated, tmp_path_factory):
    """Another tiny model (other initial weights) evaluated on the same test set with
    --compare_with the first: (its results_dir, the first's)."""
    first = evaluated[0]
    work = tmp_path_factory.mktemp("compared")
    cfg = load_config(TINY_MODEL, verbose=False)
    ms.set_seed(6)
    ms.save_checkpoint(build_network(cfg.group("model")), str(work / "other.ckpt"))
    evaluate_main(["--config_path", "/dev/null", "--ckpt_path", str(work / "other.ckpt"), "--data_dir",
                   str(first.parent / "data"), "--results_dir", str(work / "results"), "--cal_sdr",
                   "--report_items", "1", "--compare_with", str(first), *TINY_MODEL])
    return work / "results", first


@pytest.fixture(scope="module")
def compared_back(compared, tmp_path_factory):
    """The first evaluation's report made again (--report_only) against the second, from which one
    utterance was removed: (that results_dir, the removed mixture_ID)."""
    results, first = compared
    work = tmp_path_factory.mktemp("compared_back")
    again, partial = work / "again", work / "partial"
    shutil.copytree(first, again)
    shutil.copytree(results, partial)
    rows = read_rows(results)
    with open(partial / "per_utterance.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[1:])
    evaluate_main(["--config_path", "/dev/null", "--results_dir", str(again), "--report_only",
                   "--compare_with", str(partial)])
    return again, rows[0]["mixture_ID"]


@pytest.fixture(scope="module")
def separated(tmp_path_factory, evaluated):
    """separate.py over recordings named with spaces, '#', '?', '&', quotes and HTML: (out_dir, inputs)."""
    _, corpus = evaluated
    work = tmp_path_factory.mktemp("listen")
    mixtures = sorted((corpus / "test" / "mix_clean").glob("*.wav"))
    inputs = [work / "in" / HOSTILE_FILE, work / "in" / "sub dir" / "ü b.wav"]
    for source, target in zip(mixtures, inputs):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    separate_main(["--config_path", "/dev/null", "--ckpt_path", str(evaluated[0].parent / "tiny.ckpt"),
                   str(work / "in"), "--out_dir", str(work / "out"), *TINY_MODEL])
    return work / "out", inputs


@pytest.fixture(scope="module")
def chromium():
    with browser.browser() as driver:
        yield driver


def read_rows(results_dir):
    with open(results_dir / "per_utterance.csv", newline="") as f:
        return list(csv.DictReader(f))


def folder_hash(folder):
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_report_shows_the_table_exactly_and_its_audio_scores_what_the_table_says(evaluated):
    """Every row of per_utterance.csv is in the page with the CSV's own values; the wavs the players
    play, decoded from the files, score the table's SI-SNRi (16-bit quantisation aside), and the
    references are the test set's own sources."""
    results, corpus = evaluated
    rows = read_rows(results)
    page = Page((results / "report.html").read_text())
    columns = ["mixture_ID", "seconds", "SI-SNRi", "SDRi", "SI-SNR"]
    assert sorted(page.rows) == sorted([row[c] for c in columns] for row in rows)
    shown_order = [float(cells[2]) for cells in page.rows]
    assert shown_order == sorted(shown_order)  # worst first
    items = json.loads((results / "report_audio" / "items.json").read_text())
    assert [item["rank"] for item in items] == ["worst", "best"]
    by_id = {row["mixture_ID"]: row for row in rows}
    worst = min(rows, key=lambda r: float(r["SI-SNRi"]))
    assert items[0]["key"]["mixture_ID"] == worst["mixture_ID"]
    for item in items:
        folder = results / "report_audio" / item["folder"]
        mixture = sf.read(folder / "mixture.wav", dtype="float32")[0]
        estimates = np.stack([sf.read(folder / f"estimate_{c}.wav", dtype="float32")[0] for c in (1, 2)])
        references = np.stack([sf.read(folder / f"reference_{c}.wav", dtype="float32")[0] for c in (1, 2)])
        row = by_id[item["key"]["mixture_ID"]]
        assert float(row["seconds"]) == pytest.approx(len(mixture) / 8000, abs=1e-4)
        # 16-bit files of an untrained model's estimates (SI-SNR near -35 dB): quantisation moves them a little
        assert score(mixture, references, estimates, "x")["SI-SNRi"] == pytest.approx(float(row["SI-SNRi"]), abs=0.05)
        listed = [r for r in csv.DictReader((corpus / "metadata" / "mixture_test_mix_clean.csv").open())
                  if r["mixture_ID"] == item["key"]["mixture_ID"]][0]
        for c in (1, 2):
            original = sf.read(listed[f"source_{c}_path"], dtype="float32")[0]
            np.testing.assert_array_equal(references[c - 1], original)
        assert all(f"report_audio/{item['folder']}/{name}" in page.audio for name in item["files"])
    assert len(page.audio) == 2 * 5
    summary = json.loads((results / "summary.json").read_text())
    text = " ".join(page.text)
    si_snri = [float(r["SI-SNRi"]) for r in rows]
    assert f"{np.mean(si_snri):.2f} / {np.median(si_snri):.2f} dB" in text
    assert summary["model"] in text and summary["test_set"] in text and "kernel_size 16" in text


def test_an_html_name_is_text_not_markup(evaluated, separated):
    results, _ = evaluated
    page = Page((results / "report.html").read_text())
    assert page.scripts == 1 and HOSTILE_ID in " ".join(page.text)
    listen = Page((separated[0] / "listen.html").read_text())
    assert listen.scripts == 1 and HOSTILE_FILE in " ".join(listen.text)


def decoded(driver, src, rate):
    """The samples Chromium decodes from an audio element's src (no resampling)."""
    result = driver.execute_async_script("""
        const [src, rate, done] = arguments;
        const request = new XMLHttpRequest();
        request.open("GET", src);
        request.responseType = "arraybuffer";
        request.onload = () => new OfflineAudioContext(1, 1, rate).decodeAudioData(request.response)
            .then(buffer => done(Array.from(buffer.getChannelData(0)))).catch(err => done("error " + err));
        request.onerror = () => done("error loading " + src);
        request.send();""", src, rate)
    assert not isinstance(result, str), result
    return np.asarray(result, np.float32)


def audio_states(driver):
    """Per audio element: (src, duration in seconds, whether it played)."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all(Array.from(document.querySelectorAll("audio")).map(audio => new Promise(resolve => {
            const report = () => {
                audio.pause();
                resolve([audio.getAttribute("src"), audio.duration, audio.currentTime > 0]);
            };
            const played = () => audio.play().then(() => {
                    audio.addEventListener("timeupdate", () => { if (audio.currentTime > 0) report(); });
                    setTimeout(report, 5000);
                }).catch(err => resolve([audio.getAttribute("src"), "error " + err, false]));
            if (audio.error) resolve([audio.getAttribute("src"), "error " + audio.error.code, false]);
            else if (audio.readyState >= 1) played();
            else {
                audio.addEventListener("loadedmetadata", played);
                audio.addEventListener("error", () => resolve([audio.getAttribute("src"), "error", false]));
            }
        }))).then(done);""")


def open_page(driver, path):
    driver.get_log("browser")  # what earlier pages logged
    driver.set_window_size(1200, 900)
    driver.get(Path(path).resolve().as_uri())
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def check_players(driver, page_dir):
    """Every player loads and plays its file, for the file's length (within 10 ms), and the samples
    Chromium decodes from it are the file's."""
    states = audio_states(driver)
    assert states
    for src, duration, played in states:
        path = page_dir / unquote(src)
        info = sf.info(str(path))
        assert not isinstance(duration, str), (src, duration)
        assert duration == pytest.approx(info.frames / info.samplerate, abs=0.010), src
        assert played, src
        # within one 16-bit step: Chromium scales positive samples by 1/32767, soundfile by 1/32768
        np.testing.assert_allclose(decoded(driver, src, info.samplerate),
                                   sf.read(str(path), dtype="float32", always_2d=True)[0].mean(1), rtol=0,
                                   atol=1 / 32768, err_msg=src)


def column(driver, index):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#results tbody tr'))"
        ".map(r => r.cells[arguments[0]].dataset.value)",
        index)


def test_the_evaluation_report_in_a_browser(evaluated, chromium, tmp_path):
    results, _ = evaluated
    open_page(chromium, results / "report.html")
    check_players(chromium, results)
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    with pytest.raises(NoAlertPresentException):
        chromium.switch_to.alert.text
    cells = [c.text for c in chromium.find_elements(By.CSS_SELECTOR, "#results td:first-child")]
    assert any(cell.startswith(HOSTILE_ID) for cell in cells)
    si_snri = [float(v) for v in column(chromium, 2)]
    assert si_snri == sorted(si_snri)
    headers = chromium.find_elements(By.CSS_SELECTOR, "#results th button")
    headers[2].click()  # SI-SNRi again: best first
    assert [float(v) for v in column(chromium, 2)] == sorted(si_snri, reverse=True)
    headers[1].click()  # seconds
    seconds = [float(v) for v in column(chromium, 1)]
    assert seconds == sorted(seconds) and column(chromium, 2) != [str(v) for v in si_snri]
    histogram = Image.open(io.BytesIO(chromium.find_element(By.CSS_SELECTOR, "svg.histogram").screenshot_as_png))
    pixels = np.asarray(histogram.convert("RGB")).reshape(-1, 3)
    assert (np.abs(pixels.astype(int) - BAR).max(1) < 8).sum() > 200, "no histogram bars drawn"


def test_the_pages_fit_a_phone_screen(evaluated, separated, chromium, tmp_path):
    """At 390 CSS pixels wide nothing runs off the side (the table scrolls inside its box) and the
    histogram is drawn within the screen."""
    for page in (evaluated[0] / "report.html", separated[0] / "listen.html"):
        open_page(chromium, page)
        chromium.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                 {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        try:
            assert chromium.execute_script("return document.documentElement.scrollWidth") <= 390, page
            shot = Image.open(io.BytesIO(chromium.get_screenshot_as_png())).convert("RGB")
            assert shot.width == 390 and len(np.unique(np.asarray(shot).reshape(-1, 3), axis=0)) > 50, "a blank screen"
            if page.name == "report.html":
                width = chromium.execute_script(
                    "return document.querySelector('svg.histogram').getBoundingClientRect().right")
                assert 100 < width <= 390
                assert (np.abs(np.asarray(shot).reshape(-1, 3).astype(int) - BAR).max(1) < 8).sum() > 50
        finally:
            chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_listening_page_in_a_browser(separated, chromium):
    """listen.html plays each input and the wav files separate.py wrote (the same samples), and
    shows an HTML file name as text."""
    out_dir, inputs = separated
    open_page(chromium, out_dir / "listen.html")
    check_players(chromium, out_dir)
    page = Page((out_dir / "listen.html").read_text())
    written = sorted(p for p in out_dir.rglob("*.wav"))
    assert len(written) == 4
    played = {(out_dir / unquote(src)).resolve() for src in page.audio}
    assert played == {p.resolve() for p in written + inputs}
    assert chromium.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    from selenium.webdriver.common.by import By
    assert HOSTILE_FILE in [h.text for h in chromium.find_elements(By.CSS_SELECTOR, "h3")]


def comparison_columns(page_rows):
    """{mixture_ID: (compared SI-SNRi, change)} from a comparing report's table."""
    return {cells[0]: (cells[-2], cells[-1]) for cells in page_rows}


def test_a_comparison_shows_both_scores_and_their_change(compared, compared_back):
    """Beside each utterance, the other evaluation's SI-SNRi as its CSV has it and the change; the
    summary's average change and counts are those of the two CSVs. Made again the other way round,
    the changes change sign, the audio stays, and an item the other table lacks has empty cells."""
    results, first = compared
    mine, theirs = read_rows(results), {r["mixture_ID"]: r["SI-SNRi"] for r in read_rows(first)}
    page = Page((results / "report.html").read_text())
    shown = comparison_columns(page.rows)
    assert sorted(shown) == sorted(theirs)
    for row in mine:
        other, change = shown[row["mixture_ID"]]
        assert other == theirs[row["mixture_ID"]]
        assert float(change) == pytest.approx(float(row["SI-SNRi"]) - float(theirs[row["mixture_ID"]]), abs=1e-12)
    changes = np.array([float(r["SI-SNRi"]) - float(theirs[r["mixture_ID"]]) for r in mine])
    text = " ".join(page.text)
    assert (f"{changes.mean():+.2f} dB on average over the {len(mine)} utterances both scored: "
            f"higher on {(changes > 0).sum()}, lower on {(changes < 0).sum()} "
            f"(at most {changes.max():+.2f} and {changes.min():+.2f} dB)") in text
    mean = np.mean([float(v) for v in theirs.values()])
    assert f"{first.parent / 'tiny.ckpt'}: SI-SNRi {mean:.2f} dB on average; model settings as here" in text

    again, dropped = compared_back
    back = comparison_columns(Page((again / "report.html").read_text()).rows)
    assert back[dropped] == ("", "")
    for row in mine:
        if row["mixture_ID"] != dropped:
            assert float(back[row["mixture_ID"]][1]) == pytest.approx(-float(shown[row["mixture_ID"]][1]), abs=1e-12)
    back_page = Page((again / "report.html").read_text())
    assert "1 only here, 0 only there" in " ".join(back_page.text) and len(back_page.audio) == 2 * 5


def test_the_comparison_in_a_browser(compared, compared_back, chromium):
    """Sorting by the change reorders the table, items without one last either way; the scatter of
    both scores is drawn."""
    from selenium.webdriver.common.by import By
    results, _ = compared
    open_page(chromium, results / "report.html")
    headers = chromium.find_elements(By.CSS_SELECTOR, "#results th button")
    assert headers[-1].text.startswith("change")
    worst_first = column(chromium, 0)
    headers[-1].click()
    changes = [float(v) for v in column(chromium, len(headers) - 1)]
    assert changes == sorted(changes) and column(chromium, 0) != worst_first
    scatter = Image.open(io.BytesIO(chromium.find_element(By.CSS_SELECTOR, "svg.scatter").screenshot_as_png))
    pixels = np.asarray(scatter.convert("RGB")).reshape(-1, 3).astype(int)
    dots = sum((np.abs(pixels - colour).max(1) < 8).sum() for colour in (BAR, (0xd9, 0x82, 0x2b)))
    assert dots > 10 * len(changes), "no points drawn"

    again, dropped = compared_back
    open_page(chromium, again / "report.html")
    headers = chromium.find_elements(By.CSS_SELECTOR, "#results th button")
    for descending in (False, True):
        headers[-1].click()
        values = column(chromium, len(headers) - 1)
        assert values[-1] == "" and "" not in values[:-1] and column(chromium, 0)[-1] == dropped
        numbers = [float(v) for v in values[:-1]]
        assert numbers == sorted(numbers, reverse=descending)


def test_the_comparison_names_the_model_settings_that_differ(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({"protocol": "whole utterances", "sample_rate": 8000,
                                                    "model": "run1/best.ckpt",
                                                    "model_args": {"K": 100, "num_layers": 6}}))
    (other / "per_utterance.csv").write_text("mixture_ID,seconds,SI-SNR,SI-SNRi\na,1.0,9.5,10.0\nb,2.0,11.5,12.5\n")
    here = [{"mixture_ID": "a", "SI-SNRi": "11.0"}, {"mixture_ID": "b", "SI-SNRi": "12.0"},
            {"mixture_ID": "c", "SI-SNRi": "3.0"}]
    comparison = Comparison(other)
    entries = dict(comparison.summary_entries(here, "utterance", {"K": 250, "num_layers": 6}))
    assert entries["Compared with"] == "run1/best.ckpt: SI-SNRi 11.25 dB on average; model settings K 100 (here 250)"
    assert entries["SI-SNRi change"] == ("+0.25 dB on average over the 2 utterances both scored: higher on 1, "
                                         "lower on 1 (at most +1.00 and -0.50 dB); 1 only here, 0 only there")
    assert dict(comparison.summary_entries(here, "utterance", {}))["Compared with"].endswith("not recorded here")
    with pytest.raises(UserError, match="at 8000 Hz, this evaluation as 'whole utterances' at 16000 Hz"):
        comparison.check("whole utterances", 16000)


def test_an_evaluation_of_another_protocol_is_refused_before_work(compared, tmp_path):
    """--compare_with a folder without an evaluation, or one scored by another protocol or at
    another sample rate: one line naming it, before any work; the results folder untouched."""
    results, first = compared
    pieces, other_rate = tmp_path / "pieces", tmp_path / "16k"
    for folder, change in ((pieces, {"protocol": "4-s pieces"}), (other_rate, {"sample_rate": 16000})):
        shutil.copytree(first, folder)
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps({**summary, **change}))
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    before = folder_hash(copy)
    ckpt = str(first.parent / "tiny.ckpt")
    for other, message in ((pieces, "scored as '4-s pieces' at 8000 Hz, this evaluation as 'whole utterances'"),
                           (other_rate, "at 16000 Hz, this evaluation as 'whole utterances' at 8000 Hz"),
                           (tmp_path / "none", "summary.json: No such file or directory: --compare_with must")):
        for extra in (["--report_only"], ["--ckpt_path", ckpt, "--data_dir", str(first.parent / "data"), *TINY_MODEL]):
            with pytest.raises(UserError, match=message):
                evaluate_main(["--config_path", "/dev/null", "--results_dir", str(copy), "--compare_with",
                               str(other), *extra])
    assert folder_hash(copy) == before


def test_a_results_folder_without_its_audio_is_one_line(evaluated, tmp_path):
    results, _ = evaluated
    partial = tmp_path / "partial results"
    partial.mkdir()
    for name in ("per_utterance.csv", "summary.json"):
        shutil.copy(results / name, partial / name)
    with pytest.raises(UserError, match=f"{partial / 'report_audio' / 'items.json'}: No such file or directory: "
                                        f"--results_dir must hold a whole evaluation"):
        evaluate_main(["--config_path", "/dev/null", "--results_dir", str(partial), "--report_only"])
    assert sorted(p.name for p in partial.iterdir()) == ["per_utterance.csv", "summary.json"]


def test_a_failing_report_leaves_the_results_as_they_were(evaluated, tmp_path, monkeypatch):
    """The table, summary, report and its audio are replaced together: a failure while drawing the
    report (here a spectrogram) changes none of them."""
    results, _ = evaluated
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    before = folder_hash(copy)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report, "spectrograms", broken)
    with pytest.raises(UserError):
        evaluate_main(["--config_path", "/dev/null", "--ckpt_path", str(results.parent / "tiny.ckpt"),
                       "--data_dir", str(results.parent / "data"), "--results_dir", str(copy), *TINY_MODEL])
    assert folder_hash(copy) == before
    assert sorted(p.name for p in copy.iterdir()) == sorted(p.name for p in results.iterdir())


@pytest.mark.parametrize("name", ["report.html", "report_audio", "listen.html"])
def test_a_users_file_where_a_report_goes_is_refused_and_kept(evaluated, tmp_path, name):
    results, _ = evaluated
    target = tmp_path / name
    if name == "report_audio":
        target.mkdir()
        (target / "mine.wav").write_bytes(b"mine")
    else:
        target.write_text("<p>my own page</p>")
    before = folder_hash(tmp_path)
    ckpt = str(results.parent / "tiny.ckpt")
    with pytest.raises(UserError, match="not .* this program wrote|not written by evaluate.py"):
        if name == "listen.html":
            separate_main(["--config_path", "/dev/null", "--ckpt_path", ckpt, str(evaluated[1] / "test" / "s1"),
                           "--out_dir", str(tmp_path), *TINY_MODEL])
        else:
            evaluate_main(["--config_path", "/dev/null", "--ckpt_path", ckpt, "--data_dir",
                           str(results.parent / "data"), "--results_dir", str(tmp_path), *TINY_MODEL])
    assert folder_hash(tmp_path) == before


def test_without_a_browser_the_tests_say_how_to_install_one(monkeypatch):
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(UserError, match="apt-get install -y chromium chromium-driver"):
        with browser.browser():
            pass
