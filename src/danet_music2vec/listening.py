"""The listening page: a few test mixtures of one pipeline run as sound and pictures, in one HTML file.

For each chosen mixture (:func:`choose_mixtures` says how) the page has audio players for the
mixture, the separated music, the estimated noise and the clean music, a spectrogram of each on one
dB scale, the separator's NSDR / SIR / SAR beside its references', and the genre every classification
path predicts with its probability. Everything is read from what the ``score`` and ``classify``
stages wrote (the mixture and clean music are re-rendered bit for bit from data/mixtures.parquet);
nothing is separated or classified again.

The page is self-contained: audio (Ogg Vorbis) and pictures (JPEG) are inlined as ``data:`` URIs,
because MLflow's artifact view shows an HTML artifact in an iframe without a base URL (relative
links to files beside it would not load), and a file:// page then needs nothing next to it.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from danet_music2vec.audio import load_audio
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.errors import StaleDataError
from danet_music2vec.evaluation import noise_names
from danet_music2vec.evidence import SCORED
from danet_music2vec.plots import plot_spectrograms

# The rule, as the page states it.
RULE = ("the test mixtures with the best, the median and the worst NSDR of the separator's music, then, for each noise "
        "category (alphabetical) not yet heard, its median-NSDR mixture, up to {limit} mixtures")  # fmt: skip
# The four sounds of a mixture, in the order the page plays and draws them.
SOUNDS = ("mixture", "separated music", "estimated noise", "clean music")
# The systems whose scores the page shows (rows of data/separation_scores.parquet), in this order.
SYSTEMS = {"separator": "separator", "separator_full_band": "separator, full band", "oracle_irm": "oracle IRM (ceiling)",
           "spectral_gate": "spectral gate (floor)"}  # fmt: skip


def choose_mixtures(scores: pd.DataFrame, categories: Mapping[str, Sequence[str]], limit: int) -> list[tuple[str, str]]:
    """``(mixture_id, why)`` of the mixtures to listen to, by :data:`RULE`.

    ``scores`` holds the separator's rows of data/separation_scores.parquet (``mixture_id``,
    ``nsdr_music``, ``silent``); silent mixtures have no NSDR and are left out. ``categories`` gives
    each mixture's noise categories (two with ``noises: 2``).
    """
    scored = scores[~scores["silent"] & scores["nsdr_music"].notna()]
    scored = scored.sort_values(["nsdr_music", "mixture_id"], ascending=[False, True])
    if scored.empty:
        raise StaleDataError("data/separation_scores.parquet: no scored (non-silent) test mixture; run `dvc repro score`")
    ids = list(scored["mixture_id"])
    chosen: dict[str, str] = {}
    for mixture_id, why in ((ids[0], "best NSDR"), (ids[len(ids) // 2], "median NSDR"), (ids[-1], "worst NSDR")):
        chosen.setdefault(mixture_id, why)
    heard = {c for m in chosen for c in categories[m]}
    for category in sorted({c for m in ids for c in categories[m]}):
        if len(chosen) >= limit:
            break
        if category in heard:
            continue
        members = [m for m in ids if category in categories[m] and m not in chosen]  # best first
        if members:
            pick = members[len(members) // 2]
            chosen[pick] = f"noise category {category}: its median NSDR"
            heard.update(categories[pick])
    return list(chosen.items())[:limit]


@dataclass
class Mixture:
    """What the page shows of one test mixture."""

    mixture_id: str
    why: str
    genre: str  # the true genre
    noise: str  # the noise categories, ``+``-joined
    snr_db: float
    sounds: dict[str, tuple[np.ndarray, int]]  # SOUNDS name -> (mono wave, rate)
    scores: pd.DataFrame  # one row per system: nsdr_music, sir_music, sar_music
    genres: pd.DataFrame  # one row per classification path: input, predicted_label, probability
    spectrograms: bytes  # JPEG: :func:`spectrogram_image`


def genre_table(predictions: pd.DataFrame, mixture_id: str) -> pd.DataFrame:
    """Every classification path of one mixture (data/predictions.parquet): the genre it predicts and its probability."""
    rows = predictions[predictions["mixture_id"] == mixture_id].set_index("input")
    if rows.empty:
        raise StaleDataError(f"data/predictions.parquet: no row for {mixture_id}, it is older than data/mixtures.parquet; "
                             "run `dvc repro classify`")
    rows = rows.reindex([p for p in SCORED if p in rows.index])
    probability = [float(row[f"p_{row['predicted_label']}"]) for _, row in rows.iterrows()]
    return pd.DataFrame({"input": rows.index, "predicted_label": rows["predicted_label"].to_numpy(), "probability": probability})


def encode_ogg(wave: np.ndarray, rate: int, compression: float) -> bytes:
    """Ogg Vorbis bytes of a mono wave (``compression``: libsndfile's 0 = best quality .. 1 = smallest)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(wave, dtype=np.float32), rate, format="OGG", subtype="VORBIS", compression_level=compression)
    return buffer.getvalue()


def playable(sounds: Mapping[str, tuple[np.ndarray, int]]) -> dict[str, tuple[np.ndarray, int]]:
    """The sounds scaled by one common gain so that none clips: their loudness relative to each other is kept."""
    peak = max(float(np.max(np.abs(wave), initial=0.0)) for wave, _ in sounds.values())
    gain = min(1.0, 0.99 / peak) if peak > 0 else 1.0
    return {name: (np.asarray(wave, dtype=np.float32) * gain, rate) for name, (wave, rate) in sounds.items()}


def spectrogram_image(title: str, sounds: Mapping[str, tuple[np.ndarray, int]]) -> bytes:
    """JPEG of the sounds as stacked spectrograms on one dB scale, each titled ``<title>: <sound>``."""
    panels = [(f"{title}: {name}", wave, rate) for name, (wave, rate) in sounds.items()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spectrograms.jpg"
        plot_spectrograms(panels, path, width=9.0, panel_height=1.8, dpi=90)
        return path.read_bytes()


def load_mixture(
    row: Any, why: str, separated: pd.Series, scores: pd.DataFrame, predictions: pd.DataFrame, noise_labels: Mapping[str, str]
) -> Mixture:
    """One chosen mixture from the stages' outputs: ``row`` of data/mixtures.parquet (re-rendered), ``separated`` its
    row of data/separated/index.parquet, ``scores`` data/separation_scores.parquet, ``predictions``
    data/predictions.parquet, ``noise_labels`` the category of each noise clip (``evaluation.noise_labels``)."""
    rendered, rate = render_mixture(row), int(row.sample_rate)
    out_rate = int(separated["sample_rate"])  # the separator's own output rate: played as it was scored
    sounds = {
        "mixture": (rendered.mixture, rate),
        "separated music": (load_audio(separated["music_path"], out_rate, check_silence=False), out_rate),
        "estimated noise": (load_audio(separated["noise_path"], out_rate, check_silence=False), out_rate),
        "clean music": (rendered.music, rate),
    }
    noise = "+".join(noise_labels[stem] for stem in noise_names(row.noise_clips).split("+"))
    rows = scores[scores["mixture_id"] == row.mixture_id].set_index("system")
    table = rows.reindex([s for s in SYSTEMS if s in rows.index])[["nsdr_music", "sir_music", "sar_music"]]
    table.insert(0, "system", [SYSTEMS[s] for s in table.index])
    return Mixture(
        mixture_id=row.mixture_id, why=why, genre=row.label, noise=noise, snr_db=float(row.snr_db), sounds=sounds,
        scores=table.reset_index(drop=True), genres=genre_table(predictions, row.mixture_id),
        spectrograms=spectrogram_image(f"{row.mixture_id} ({row.label} + {noise})", sounds),
    )


def _data_uri(kind: str, payload: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(payload).decode('ascii')}"


def _table(frame: pd.DataFrame, formats: Mapping[str, str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format(v, formats.get(c, '')))}</td>" for c, v in row.items()) + "</tr>"
        for _, row in frame.iterrows()
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(mixture: Mixture, compression: float) -> str:
    players = []
    for name, (wave, rate) in playable(mixture.sounds).items():
        uri = _data_uri("audio/ogg", encode_ogg(wave, rate, compression))
        players.append(f'<tr><th>{html.escape(name)}</th><td><audio controls preload="auto" data-sound="{html.escape(name)}" '
                       f'data-seconds="{len(wave) / rate:.6f}" src="{uri}"></audio></td></tr>')  # fmt: skip
    image = _data_uri("image/jpeg", mixture.spectrograms)
    scores = mixture.scores.rename(columns={"nsdr_music": "NSDR (dB)", "sir_music": "SIR (dB)", "sar_music": "SAR (dB)"})
    genres = mixture.genres.rename(columns={"input": "path", "predicted_label": "predicted genre"})
    heading = (f"{mixture.mixture_id}: {mixture.genre} music + {mixture.noise} noise at {round(mixture.snr_db, 1) + 0.0:.1f} dB SNR "
               f"<small>({html.escape(mixture.why)})</small>")  # fmt: skip
    return f"""
<section class="mixture" id="{html.escape(mixture.mixture_id)}">
  <h2>{heading}</h2>
  <div class="row">
    <div>
      <table class="players">{"".join(players)}</table>
      <h3>separation of the music</h3>
      {_table(scores, {c: ".2f" for c in ("NSDR (dB)", "SIR (dB)", "SAR (dB)")})}
      <h3>genre along each classification path (true: {html.escape(mixture.genre)})</h3>
      {_table(genres, {"probability": ".2f"})}
    </div>
    <img alt="spectrograms of {html.escape(mixture.mixture_id)}" src="{image}">
  </div>
</section>"""


def listening_page(
    mixtures: pd.DataFrame,
    separated: pd.DataFrame,
    scores: pd.DataFrame,
    predictions: pd.DataFrame,
    noise_labels: Mapping[str, str],
    limit: int,
    compression: float,
    title: str,
) -> tuple[str, list[Mixture]]:
    """The page's HTML and what it shows, from the stages' outputs: data/mixtures.parquet, data/separated/index.parquet,
    data/separation_scores.parquet, data/predictions.parquet and the noise clips' categories."""
    test = {row.mixture_id: row for row in mixtures[mixtures["split"] == "test"].itertuples(index=False)}
    separator = scores[scores["system"] == "separator"]
    for path, ids, fix in (("data/separated/index.parquet", separated["mixture_id"], "separate"),
                           ("data/separation_scores.parquet", separator["mixture_id"], "score")):  # fmt: skip
        if set(ids) != set(test):
            raise StaleDataError(f"{path}: its test mixtures are not those of data/mixtures.parquet; run `dvc repro {fix}`")
    categories = {m: [noise_labels[stem] for stem in noise_names(row.noise_clips).split("+")] for m, row in test.items()}
    by_id = separated.set_index("mixture_id")
    chosen = [load_mixture(test[m], why, by_id.loc[m], scores, predictions, noise_labels)
              for m, why in choose_mixtures(separator, categories, limit)]  # fmt: skip
    return render_page(chosen, title, RULE.format(limit=limit), compression), chosen


def render_page(mixtures: Sequence[Mixture], title: str, rule: str, compression: float) -> str:
    """The listening page's HTML: one section per mixture, after the rule that chose them."""
    sections = "".join(_section(m, compression) for m in mixtures)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
  body {{ font-family: sans-serif; margin: 1em 2em; }}
  section {{ border-top: 1px solid #ccc; padding-top: 0.5em; }}
  .row {{ display: flex; gap: 2em; align-items: flex-start; }}
  img {{ width: 62%; max-width: 820px; }}
  table {{ border-collapse: collapse; margin-bottom: 0.5em; }}
  td, th {{ padding: 2px 8px; text-align: left; }}
  audio {{ height: 32px; width: 320px; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Chosen by a stated rule: {html.escape(rule)}. Each sound is Ogg Vorbis at its own rate, all four of a mixture scaled
by one gain (none clips, their loudness relative to each other is kept). NSDR: the music's SDR gain over the mixture;
SIR: noise left in it; SAR: artifacts added (higher is better, all measured at the separator's STFT rate, full band
where stated). The spectrograms share one dB scale per mixture.</p>
{sections}
</body>
</html>
"""
