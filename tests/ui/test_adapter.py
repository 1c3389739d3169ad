"""The reader's service over the real pipeline: which clips on disk are this reader's music."""

from __future__ import annotations

from pathlib import Path

from m2m import pipeline
from m2m.book import load_book
from m2m.ui.adapter import PipelineAdapter


def test_clips_made_with_other_settings_or_an_older_plan_are_not_this_readers(manga109_root: Path,
                                                                              tmp_path: Path) -> None:
    """A run folder is shared by book and condition; a clip counts for a reader only when it was made
    from the current plan with the reader's settings (it used to count whenever its file existed, so
    changed settings or a re-uploaded book kept playing the old music)."""
    service = PipelineAdapter()
    book = load_book(manga109_root)
    settings = pipeline.Settings(runs_root=tmp_path / "runs", emotion_backend="dialogue")
    service.plan_book(book, settings)
    service.render_pages(book, settings, [0])
    assert set(service.open_run(book, settings).clips) == {0}
    reseeded = pipeline.Settings(runs_root=tmp_path / "runs", emotion_backend="dialogue", seed=7)
    assert service.open_run(book, reseeded).clips == {}  # other settings: that clip is not theirs
    service.render_pages(book, reseeded, [0])
    assert set(service.open_run(book, reseeded).clips) == {0}
    assert service.open_run(book, settings).clips == {}  # and now the first reader's is re-made
