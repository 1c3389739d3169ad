"""``m2m evaluate``: objective figures for runs, side by side for the conditions.

``evaluate`` (evaluate.py) measures; ``sources`` finds the runs and plays them as the reader does;
``transitions``, ``features``, ``levels`` and ``clap`` are the measures; ``report`` writes the
table, the JSON file and the chart.
"""
