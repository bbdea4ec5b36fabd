"""Notebook 04: HTTP checked against the standard library, the lab's web server, keep-alive captured.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 04's exercises
    `commands.py`: its subcommands of `python -m netlab` (`http-server`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("04",)
# `netlab.http` is this lesson's experiments module.
FACE_MODULE = "http"
FACE_NAMES = ()
