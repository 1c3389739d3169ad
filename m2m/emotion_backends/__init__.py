"""Stage 2 backends (see :mod:`m2m.emotions` for the registry and the stage function).

``crops`` cuts faces out of pages (Pillow only); ``clip`` holds the two ``open_clip`` backends and the
checkpoint format; ``training`` fine-tunes and evaluates them; ``dialogue`` and ``annotations`` need no
images at all.
"""
