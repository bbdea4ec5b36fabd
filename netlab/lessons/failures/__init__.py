"""Notebook 06: each failure between two programs, in code and on the wire.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 06's exercises

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("06",)
# `netlab.failures` is this lesson's experiments module.
FACE_MODULE = "failures"
FACE_NAMES = ()
