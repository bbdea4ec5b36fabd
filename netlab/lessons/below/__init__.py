"""Notebook 10: below TCP, a router in the lab: ARP, TTL, ICMP, traceroute, path MTU, names, IPv6.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 10's exercises
    `commands.py`: its subcommands of `python -m netlab` (`traceroute`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("10",)
# `netlab.below` is this lesson's experiments module.
FACE_MODULE = "below"
FACE_NAMES = ()
