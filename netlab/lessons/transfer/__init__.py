"""Notebook 05: the scripted remote host on a 1500-byte link: segmentation, flow control, loss,
retransmission.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 05's exercises
    `commands.py`: its subcommands of `python -m netlab` (`retransmit`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("05",)
# `netlab.peer` is this lesson's experiments module.
FACE_MODULE = "peer"
FACE_NAMES = ()
