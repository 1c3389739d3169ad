"""CLAP text-audio agreement and the Fréchet audio distance (FAD), when a CLAP model is at hand.

A CLAP model embeds audio and text in one space. Agreement is the mean cosine between each page's
clip and its caption; the margin is that minus the mean cosine of the clip with the other pages'
captions (CLAP cosines sit at a model-dependent level, so the margin says more than the level). FAD
is the Fréchet distance between the Gaussians fitted to the run's clip embeddings and to a reference
set of audio (``--fad-reference``). The model is read from the Hugging Face cache only
(``local_files_only``); with none there, every figure says "unavailable: <why>", never a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from m2m.music.base import resample

DEFAULT_CLAP_MODEL = "laion/clap-htsat-unfused"
CLAP_SECONDS = 10.0  # what the LAION CLAP models hear of a clip (its first ten seconds: deterministic)


class ClapScorer(Protocol):
    """What the measures need of a CLAP model: unit-length embeddings of audio and of text."""

    name: str

    def audio_embeddings(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """``[clips, dim]`` for mono clips at ``sample_rate``."""
        ...

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """``[texts, dim]``."""
        ...


ClapLoader = Callable[[str], ClapScorer]


class TransformersClap:
    """A transformers ``ClapModel`` with its feature extractor and a tokenizer (``texts -> tensors``)."""

    def __init__(self, name: str, model: Any, feature_extractor: Any, tokenize: Callable[[Sequence[str]], dict]) -> None:
        self.name, self.model, self.features, self.tokenize = name, model.eval(), feature_extractor, tokenize

    def audio_embeddings(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        import torch

        rate = int(self.features.sampling_rate)
        seconds = min(CLAP_SECONDS, float(self.features.nb_max_samples) / rate)
        # cut to the model's length here, so its extractor never takes a random excerpt
        waves = [resample(np.asarray(c, dtype=np.float32), sample_rate, rate)[:int(seconds * rate)] for c in clips]
        inputs = self.features(waves, sampling_rate=rate, return_tensors="pt", truncation="rand_trunc",
                               padding="repeatpad")
        with torch.no_grad():
            out = self.model.get_audio_features(**inputs)
        return _unit(_tensor(out))

    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.model.get_text_features(**self.tokenize(list(texts)))
        return _unit(_tensor(out))


def _tensor(out: Any) -> np.ndarray:
    # transformers 4 returns the projected embeddings, 5 an output whose pooler_output holds them
    value = out if hasattr(out, "detach") else out.pooler_output
    return value.detach().float().cpu().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def load_cached_clap(model_id: str) -> ClapScorer:
    """The CLAP model ``model_id`` from the Hugging Face cache; an OSError says it is not there."""
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(model_id, local_files_only=True)
    processor = ClapProcessor.from_pretrained(model_id, local_files_only=True)

    def tokenize(texts: Sequence[str]) -> dict:
        return processor.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")

    return TransformersClap(model_id, model, processor.feature_extractor, tokenize)


def open_clap(model_id: str, loader: ClapLoader = load_cached_clap) -> ClapScorer | str:
    """The scorer, or why there is none (the text the table and JSON show after "unavailable: ")."""
    try:
        return loader(model_id)
    except ImportError as e:
        return f"transformers cannot load CLAP ({e})"
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"no CLAP model {model_id!r} in the Hugging Face cache ({first[:160]})"


@dataclass(frozen=True)
class ClapScores:
    """A run's CLAP figures. ``available`` False: ``note`` says why, and no figure is given; FAD may
    be unavailable on its own (``fad_note``) when there is no reference audio."""

    available: bool
    note: str
    model: str = ""
    agreement: float | None = None
    margin: float | None = None
    per_page: tuple[float, ...] = ()
    fad: float | None = None
    fad_note: str = ""


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to the rows of ``a`` and of ``b``."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # a singular product (few clips): nudge both, as the FAD reference does
        eye = np.eye(cov_a.shape[0]) * 1e-6
        root = linalg.sqrtm((cov_a + eye) @ (cov_b + eye))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(np.real(root)))
    return max(value, 0.0)


def clap_scores(scorer: ClapScorer | str, clips: Sequence[np.ndarray], sample_rate: int, captions: Sequence[str],
                reference: np.ndarray | str) -> ClapScores:
    """Agreement of each mono clip with its caption, and FAD against ``reference`` (embeddings, or why
    there are none)."""
    if isinstance(scorer, str):
        return ClapScores(False, f"unavailable: {scorer}", fad_note=f"unavailable: {scorer}")
    audio, text = scorer.audio_embeddings(clips, sample_rate), scorer.text_embeddings(captions)
    cosines = audio @ text.T
    own = np.diag(cosines)
    others = (cosines.sum(axis=1) - own) / max(len(captions) - 1, 1)
    margin = float(np.mean(own - others)) if len(captions) > 1 else None
    if isinstance(reference, str):
        fad, fad_note = None, f"unavailable: {reference}"
    elif len(reference) < 2 or len(audio) < 2:
        fad, fad_note = None, "unavailable: FAD needs at least two clips on each side"
    else:
        fad, fad_note = round(frechet_distance(audio, reference), 4), f"{len(audio)} clips against {len(reference)}"
    return ClapScores(True, "", scorer.name, round(float(own.mean()), 4), None if margin is None else round(margin, 4),
                      tuple(round(float(x), 4) for x in own), fad, fad_note)


def reference_embeddings(scorer: ClapScorer | str, folder: Path | None) -> np.ndarray | str:
    """CLAP embeddings of every audio file in ``folder`` (FAD's reference set), or why there are none."""
    from m2m.audio import read_audio

    if isinstance(scorer, str):
        return scorer
    if folder is None:
        return "no reference audio (--fad-reference FOLDER)"
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".ogg", ".wav", ".flac", ".mp3"})
    if not files:
        return f"no audio files in {folder}"
    audios = [read_audio(p) for p in files]
    rate = audios[0].sample_rate
    return scorer.audio_embeddings([resample(a.samples.mean(axis=0), a.sample_rate, rate) for a in audios], rate)
