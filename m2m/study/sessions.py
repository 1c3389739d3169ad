"""Blinding and counterbalancing for one participant's pass through a study.

The paper (IV.A) shows scenes in random order and keeps participants unaware of the music source.
Here each participant gets:

* a random order of stimuli, fixed by their anonymous id (a reload shows the same order);
* per stimulus, the three versions under neutral labels A, B, C. Which condition sits behind which
  label follows a balanced Latin square (Williams design) over the six orderings of three
  conditions, indexed by participant number + stimulus position, so that over any six
  consecutive participants every condition takes every position equally often for every stimulus;
* opaque tokens for audio and page images. The browser sees only tokens; the server maps a token
  back to a file. Tokens are HMACs under a server secret, so a session can be rebuilt after a
  restart without storing it, and a participant cannot forge or guess another one's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType

from m2m.cues import enter_json

from .manifest import CONDITIONS, PageEntry, Stimulus, Study, audio_path

LABELS: tuple[str, ...] = ("A", "B", "C")

# Williams design for three treatments: the cyclic square 012/120/201 and its mirror image. For an
# odd number of treatments a single square cannot balance first-order carry-over, its mirror can;
# for three treatments the two squares together are exactly the six permutations. Each condition
# is in each position twice, and each ordered pair of neighbours occurs twice.
WILLIAMS_SQUARE: tuple[tuple[int, int, int], ...] = (
    (0, 1, 2),
    (1, 2, 0),
    (2, 0, 1),
    (2, 1, 0),
    (0, 2, 1),
    (1, 0, 2),
)

MIN_SECRET_BYTES = 16


def new_participant_id() -> str:
    """Anonymous participant id: 128 random bits, URL-safe, linked to no personal data."""
    return secrets.token_urlsafe(16)


def new_secret() -> bytes:
    """Server secret for token HMACs (the store keeps one: ``RatingsStore.server_secret()``)."""
    return secrets.token_bytes(32)


def version_order(participant_number: int, stimulus_index: int) -> tuple[str, str, str]:
    """Conditions behind labels A, B, C for one participant and one stimulus (manifest index)."""
    _check_index("participant_number", participant_number)
    _check_index("stimulus_index", stimulus_index)
    row = WILLIAMS_SQUARE[(participant_number + stimulus_index) % len(WILLIAMS_SQUARE)]
    return (CONDITIONS[row[0]], CONDITIONS[row[1]], CONDITIONS[row[2]])


def condition_for(study: Study, participant_number: int, stimulus_id: str, label: str) -> str:
    """Resolve a label back to its condition, server-side only. ValueError for an unknown stimulus or label."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {list(LABELS)}, got {label!r}")
    order = version_order(participant_number, study.stimulus_index(stimulus_id))
    return order[LABELS.index(label)]


def stimulus_order(study: Study, participant_id: str) -> tuple[str, ...]:
    """Play order of stimulus ids for this participant, random but stable across reloads."""
    _check_participant_id(participant_id)
    ids = [s.id for s in study.stimuli]
    # random.Random seeds from a str via SHA-512, so the order is the same on every server and run.
    random.Random(f"{study.id}\x1f{participant_id}").shuffle(ids)
    return tuple(ids)


# --- what the browser may see ------------------------------------------------------------------


@dataclass(frozen=True)
class PublicVersion:
    """One labelled version of a stimulus, as the browser sees it: no condition, no file name."""

    stimulus: str
    label: str
    pages: tuple[str, ...]
    audio: tuple[str, ...]
    # per page, how the music moves into it on a turn from the page before, as the reader plays it
    # (m2m.cues.enter_json, a stinger's clip as a token); None: the study's crossfade
    enter: tuple[dict[str, object] | None, ...] = ()
    # per page, the seconds a plain turn from the page before crossfades over (the cue sheet's; the
    # scene crossfade at a scene change the director chose nothing for); None: the study's crossfade
    fades: tuple[float | None, ...] = ()
    # per page, the seconds a bar of its clip lasts (None: no bar grid): a crossfade between two of
    # one bar length enters on the old clip's grid, as the reader does
    bars: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class PublicStimulus:
    stimulus: str
    versions: tuple[PublicVersion, ...]


@dataclass(frozen=True)
class PublicSession:
    """Everything a participant's browser receives, in play order. Safe to serialise as-is."""

    participant: str
    stimuli: tuple[PublicStimulus, ...]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


# --- what only the server knows ------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    """A file behind a token. ``kind`` is "audio" (a page's clip in one condition) or "page" (the image)."""

    kind: str
    path: Path
    book_id: str
    page: int


@dataclass(frozen=True)
class Session:
    """Server-side session: the public view plus the label->condition and token->file maps.

    Never send this object to a browser; send ``public`` (or ``public.to_json()``).
    """

    study_id: str
    participant_id: str
    participant_number: int
    public: PublicSession
    conditions: Mapping[tuple[str, str], str]
    assets: Mapping[str, Asset]

    def asset(self, token: str) -> Asset:
        """File behind a token from this session's public view; ValueError for anything else."""
        try:
            return self.assets[token]
        except (KeyError, TypeError) as e:
            raise ValueError(f"token {token!r} does not belong to this session") from e

    def condition(self, stimulus_id: str, label: str) -> str:
        try:
            return self.conditions[(stimulus_id, label)]
        except KeyError as e:
            raise ValueError(f"no version labelled {label!r} for stimulus {stimulus_id!r} in this session") from e


def build_session(
    study: Study,
    study_dir: str | os.PathLike[str],
    participant_id: str,
    participant_number: int,
    secret: bytes,
    page_image: Callable[[str, int], Path],
    entries: Callable[[Stimulus, str], Mapping[int, PageEntry]] | None = None,
) -> Session:
    """Assemble one participant's session. Pure: the same arguments always give the same session.

    ``participant_number`` is the order of registration in the study (``Participant.number``), the
    Latin-square index. ``page_image(book_id, page)`` locates a page image; the store's
    ``server_secret()`` is the usual ``secret``; ``entries(stimulus, condition)`` says how each
    version's music enters its pages (``manifest.version_entries``; None: every turn crossfades).
    Nothing is read from disk here.
    """
    _check_participant_id(participant_id)
    _check_index("participant_number", participant_number)
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret must be bytes of length >= {MIN_SECRET_BYTES}, got {type(secret).__name__}")

    def token(*parts: object) -> str:
        message = "\x1f".join(str(p) for p in (study.id, participant_id, *parts)).encode("utf-8")
        digest = hmac.new(secret, message, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    conditions: dict[tuple[str, str], str] = {}
    assets: dict[str, Asset] = {}
    public_stimuli: list[PublicStimulus] = []
    for stimulus_id in stimulus_order(study, participant_id):
        stimulus = study.stimulus(stimulus_id)
        page_tokens = []
        for page in stimulus.pages:
            page_token = token("page", stimulus.id, page)
            assets[page_token] = Asset("page", Path(page_image(stimulus.book_id, page)), stimulus.book_id, page)
            page_tokens.append(page_token)
        versions = []
        order = version_order(participant_number, study.stimulus_index(stimulus.id))
        for label, condition in zip(LABELS, order, strict=True):
            conditions[(stimulus.id, label)] = condition
            audio_tokens, enters, fades, bars = [], [], [], []
            moves = entries(stimulus, condition) if entries is not None else {}
            for index, page in enumerate(stimulus.pages):
                # The condition is not part of the HMAC input, the label is: tokens reveal nothing
                # about conditions even to someone comparing sessions of several participants.
                audio_token = token("audio", stimulus.id, label, page)
                path = audio_path(study_dir, stimulus, condition, page)
                assets[audio_token] = Asset("audio", path, stimulus.book_id, page)
                audio_tokens.append(audio_token)
                move = moves.get(page) if index else None  # the passage's first page has no turn into it
                enter = enter_json(move.kind, move.fade, move.silence, move.stinger_seconds) if move else None
                if enter is not None and move is not None and move.stinger is not None:
                    stinger_token = token("stinger", stimulus.id, label, page)
                    assets[stinger_token] = Asset("audio", move.stinger, stimulus.book_id, page)
                    enter["stinger"] = stinger_token
                enters.append(enter)
                fades.append(move.fade if move is not None and move.fade > 0 else None)
                entry = moves.get(page)  # the first page's too: the next page enters on its grid
                bars.append(round(entry.bar, 6) if entry is not None and entry.bar > 0 else None)
            versions.append(PublicVersion(stimulus.id, label, tuple(page_tokens), tuple(audio_tokens),
                                          tuple(enters), tuple(fades), tuple(bars)))
        public_stimuli.append(PublicStimulus(stimulus.id, tuple(versions)))
    return Session(
        study_id=study.id,
        participant_id=participant_id,
        participant_number=participant_number,
        public=PublicSession(participant=participant_id, stimuli=tuple(public_stimuli)),
        conditions=MappingProxyType(conditions),
        assets=MappingProxyType(assets),
    )


def _check_index(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_participant_id(participant_id: object) -> None:
    if not isinstance(participant_id, str) or not participant_id or len(participant_id) > 128:
        raise ValueError(f"participant_id must be a non-empty string of at most 128 characters, got {participant_id!r}")
