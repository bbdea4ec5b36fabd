"""Notebook 08: certificates made at run time, the same request over HTTP and HTTPS, the records
dissected.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 08's exercises

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("08",)
# `netlab.tls` is this lesson's experiments module.
FACE_MODULE = "tls"
FACE_NAMES = ()
