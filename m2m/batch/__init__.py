"""``m2m batch``: a whole catalogue through the pipeline on Ray, from a laptop to a GPU cluster.

``catalogue`` finds the books, ``driver`` plans them and runs each page's clip as a Ray task,
``clips`` is one page's work on a worker and its landing in the run folder, ``report`` the table
and the JSON report. Results land in the usual run folders (``runs/<book-id>/<condition>/``).
"""
