"""Notebook 07: one echo protocol served by threads, selectors and asyncio, and a load generator.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments, no RECORDINGS: they run in a lab, or on the host's loopback where
                      the lab is refused, and measure afresh each time
    `checks.py`: notebook 07's exercises

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("07",)
# `netlab.concurrency` is this lesson's experiments module.
FACE_MODULE = "concurrency"
FACE_NAMES = ()
