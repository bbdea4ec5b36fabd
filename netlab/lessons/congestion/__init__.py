"""Notebook 09: congestion control, read from the sender's kernel while it sends through a bottleneck.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 09's exercises
    `commands.py`: its subcommands of `python -m netlab` (`cwnd`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("09",)
# `netlab.congestion` is this lesson's experiments module.
FACE_MODULE = "congestion"
FACE_NAMES = ()
