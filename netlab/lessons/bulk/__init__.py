"""Notebook 07: one TCP connection moving as many bytes as it can, beside iperf3 on the same link.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments, no RECORDINGS: they run in a lab, or on the host's loopback where
                      the lab is refused, and measure afresh each time

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("07",)
# `netlab.bulk` is this lesson's experiments module.
FACE_MODULE = "bulk"
FACE_NAMES = ()
