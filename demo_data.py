"""Make a small speech-separation set in exactly LibriMix's layout, offline and deterministic.

Speech comes from eSpeak NG (bundled by the `espeakng-loader` wheel, driven through ctypes), with
many distinct synthetic speakers (accent, voice variant, pitch, pitch range, rate) saying generated
sentences. Sources are mixed the way LibriMix's generator mixes LibriSpeech: each source to a random
loudness in [-33, -25] LUFS, peak-normalised to 0.9 if it would clip, all truncated to the shortest
('min' mode), everything rescaled if the mixture would exceed 0.9; `mix_both` adds noise at
[-38, -30] LUFS. Files are 16-bit PCM and every mixture is the exact sum of its written sources.
Speakers of the dev and test splits never occur in train.

scripts/make_demo_data.py is its command line; bench.py and the tests make sets with it too.
"""
import _ctypes
import csv
import ctypes
import warnings
from pathlib import Path

import espeakng_loader
import librosa
import numpy as np
import pyloudnorm
import soundfile as sf
from tqdm import tqdm

from errors import UserError
from fileio import atomic_folder, cannot_write

SPLITS = ("train-100", "dev", "test")
ESPEAK_RATE = 22050
LOUDNESS = (-33.0, -25.0)        # LUFS, LibriMix's range for speech
NOISE_LOUDNESS = (-38.0, -30.0)  # LUFS, LibriMix's range for WHAM noise
MAX_AMP = 0.9
MARKER = "DEMO_DATA.txt"  # in every set this script makes: only such a set is ever replaced
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# eSpeak NG voice variants; f2, f3 and f5 are left out: their breath noise differs from one process
# to the next, so a set made twice would differ (tests/test_demo_data.py checks the rest repeat)
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f4",
            "klatt", "klatt2", "klatt3", "Alex", "Andy", "Annie", "anika", "belinda", "benjamin",
            "boris", "david", "ed", "edward", "grandma", "grandpa", "ian", "john", "linda", "max",
            "michel", "norbert")
WORDS = {
    "det": "the a one this that every some my your our their".split(),
    "adj": ("quiet old young bright dark small large gentle heavy quick slow green silver "
            "golden early late warm cold strange simple").split(),
    "noun": ("river garden window letter station doctor village teacher morning story "
             "mountain kitchen market horse captain sister forest message road evening "
             "bridge lantern harbour orchard meadow").split(),
    "verb": ("found carried watched opened followed painted crossed remembered visited "
             "described repaired promised answered gathered").split(),
    "prep": "near behind across under beside beyond through before after".split(),
}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


def synthesize(text, voice, rate, pitch, pitch_range):
    """Speech for `text` as float32 at 22050 Hz.

    The library keeps state between utterances, so it is loaded fresh for each one: the same
    arguments then always give the same samples.
    """
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    try:
        if lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0) != ESPEAK_RATE:
            raise RuntimeError("eSpeak NG failed to initialise")
        chunks = []

        def collect(wav, num_samples, _events):
            if num_samples > 0:
                chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
            return 0

        callback = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in ((1, rate), (3, pitch), (4, pitch_range)):  # espeakRATE, PITCH, RANGE
            lib.espeak_SetParameter(parameter, value, 0)
        data = text.encode()
        lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None)  # 1: espeakCHARS_UTF8
        lib.espeak_Synchronize()
        lib.espeak_Terminate()
    finally:
        handle = lib._handle
        del lib
        _ctypes.dlclose(handle)
    return np.concatenate(chunks).astype(np.float32) / 32768


def make_speakers(count, seed):
    """`count` distinct speakers: dicts of LibriSpeech-like id and eSpeak voice settings."""
    rng = np.random.default_rng([seed, 7])
    speakers, seen = [], set()
    while len(speakers) < count:
        voice = f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS)}"
        pitch, pitch_range, rate = (int(rng.integers(15, 86)), int(rng.integers(10, 90)),
                                    int(rng.integers(135, 211)))
        key = (voice, pitch // 10, rate // 15)
        if key in seen:
            continue
        seen.add(key)
        speakers.append(dict(id=int(rng.integers(1, 99)) * 1000 + len(speakers),
                             voice=voice, pitch=pitch, pitch_range=pitch_range, rate=rate))
    return speakers


def make_sentence(rng):
    def pick(kind):
        return str(rng.choice(WORDS[kind]))
    words = [pick("det"), pick("adj"), pick("noun"), pick("verb"), pick("det"), pick("noun")]
    for _ in range(int(rng.integers(1, 5))):
        words += [pick("prep"), pick("det"), pick("adj"), pick("noun")]
    return " ".join(words)


def speak(speaker, rng, sample_rate):
    """One utterance of `speaker` at `sample_rate`, at least 3 s long."""
    text = make_sentence(rng)
    while True:
        audio = synthesize(text, speaker["voice"], speaker["rate"], speaker["pitch"],
                           speaker["pitch_range"])
        audio = librosa.resample(audio, orig_sr=ESPEAK_RATE, target_sr=sample_rate)
        if len(audio) >= 3 * sample_rate:
            return audio
        text += " " + make_sentence(rng)


def set_loudness(audio, meter, rng, bounds):
    """Scale to a random loudness within `bounds` LUFS; peak-normalise to MAX_AMP if it would clip."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns on clipping, handled just below
        audio = pyloudnorm.normalize.loudness(audio, meter.integrated_loudness(audio),
                                              rng.uniform(*bounds))
    if np.abs(audio).max() >= 1:
        audio = audio * MAX_AMP / np.abs(audio).max()
    return audio


def to_pcm16(audio):
    return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)


def colored_noise(length, rng, sample_rate):
    """Stationary noise with a random low-pass tilt, standing in for WHAM's ambient recordings."""
    white = rng.standard_normal(length + sample_rate)
    smooth = int(rng.integers(1, 8))
    noise = np.convolve(white, np.ones(smooth) / smooth, mode="same")[:length]
    return noise.astype(np.float32)


def make_mixture(speakers, rng, sample_rate, meter):
    """Sources and noise as int16 arrays of equal length, LibriMix-style loudness and clipping."""
    sources = [set_loudness(speak(spk, rng, sample_rate), meter, rng, LOUDNESS) for spk in speakers]
    length = min(len(s) for s in sources)
    noise = set_loudness(colored_noise(length, rng, sample_rate), meter, rng, NOISE_LOUDNESS)
    sources = [s[:length] for s in sources]
    clean = np.sum(sources, axis=0)
    peak = max(np.abs(clean).max(), np.abs(clean + noise).max())
    if peak > MAX_AMP:  # one gain for all, so mix_clean and mix_both share their sources
        sources, noise = [s * MAX_AMP / peak for s in sources], noise * MAX_AMP / peak
    return [to_pcm16(s) for s in sources], to_pcm16(noise)


def utterance_id(speaker, rng, index):
    return f"{speaker['id']}-{int(rng.integers(100, 99999))}-{index:04d}"


def write_split(root, final_root, split, count, pool, num_spks, seed, split_index, sample_rate):
    """Write one split's wavs under `root` and its metadata CSVs, listing them under `final_root`."""
    meter = pyloudnorm.Meter(sample_rate)
    subdirs = ["mix_clean", "mix_both", "noise"] + [f"s{k + 1}" for k in range(num_spks)]
    for sub in subdirs:
        (root / split / sub).mkdir(parents=True, exist_ok=True)
    rows = {"mix_clean": [], "mix_both": []}
    for index in tqdm(range(count), desc=f"demo {split}", unit="mix", leave=False):
        rng = np.random.default_rng([seed, split_index, index])
        chosen = [pool[i] for i in rng.choice(len(pool), num_spks, replace=False)]
        sources, noise = make_mixture(chosen, rng, sample_rate, meter)
        mixture_id = "_".join(utterance_id(spk, rng, index) for spk in chosen)
        paths = {sub: root / split / sub / f"{mixture_id}.wav" for sub in subdirs}
        clean = np.sum(np.stack(sources).astype(np.int32), axis=0)
        signals = {"mix_clean": clean, "mix_both": clean + noise, "noise": noise,
                   **{f"s{k + 1}": s for k, s in enumerate(sources)}}
        for sub, signal in signals.items():
            sf.write(paths[sub], signal.astype(np.int16), sample_rate, subtype="PCM_16")
        listed = {sub: str(final_root / split / sub / f"{mixture_id}.wav") for sub in subdirs}
        source_paths = [listed[f"s{k + 1}"] for k in range(num_spks)]
        length = len(clean)
        rows["mix_clean"].append([mixture_id, listed["mix_clean"], *source_paths, length])
        rows["mix_both"].append([mixture_id, listed["mix_both"], *source_paths, listed["noise"],
                                 length])
    source_columns = [f"source_{k + 1}_path" for k in range(num_spks)]
    headers = {"mix_clean": ["mixture_ID", "mixture_path", *source_columns, "length"],
               "mix_both": ["mixture_ID", "mixture_path", *source_columns, "noise_path", "length"]}
    for mix_type, split_rows in rows.items():
        with open(root / "metadata" / f"mixture_{split}_{mix_type}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(headers[mix_type])
            writer.writerows(split_rows)


def demo_mindrecord(cfg, work_dir):
    """The demo set made and preprocessed (cfg's settings) under work_dir; returns the MindRecord folder."""
    from librimix import preprocess  # MindSpore: only this needs it
    out_dir = Path(work_dir) / "data"
    preprocess(make_librimix(Path(work_dir) / "librimix", num_spks=cfg.num_spks), out_dir, cfg)
    return out_dir


def make_librimix(out_dir, num_spks=2, counts=(200, 20, 20), seed=0, sample_rate=8000,
                  speakers_per_split=(100, 12, 12)):
    """Write `out_dir/Libri{C}Mix/wav{k}k/min/...` and return that folder.

    Built under a temporary name and renamed when complete, so an interrupted run leaves no
    half-made set behind. An existing Libri{C}Mix folder is replaced only if this generator made it
    (it carries a MARKER file): a real LibriMix there is never touched.
    """
    out_dir = Path(out_dir)
    final = out_dir / f"Libri{num_spks}Mix"
    if final.exists() and not (final / MARKER).is_file():
        raise UserError(f"{final} exists and was not made by make_demo_data.py (no {MARKER} in it): "
                        f"choose another --out_dir")
    layout = Path(f"wav{sample_rate // 1000}k") / "min"
    speakers = make_speakers(sum(speakers_per_split), seed)
    start = 0
    try:
        with atomic_folder(final) as partial:
            root = partial / layout
            (root / "metadata").mkdir(parents=True)
            (partial / MARKER).write_text("made by scripts/make_demo_data.py: replaced when it is run again\n")
            for split_index, (split, count, pool_size) in enumerate(zip(SPLITS, counts, speakers_per_split)):
                pool = speakers[start:start + pool_size]
                start += pool_size
                write_split(root, (final / layout).resolve(), split, count, pool, num_spks, seed,
                            split_index, sample_rate)
    except (OSError, sf.LibsndfileError, AssertionError) as err:  # soundfile's failed writes among them
        raise cannot_write(final, err) from None
    return final / layout
