"""Notebook 11: addresses and routes — subnets, longest-prefix match over three routers, static routes
gone wrong, ping, fragments, and a routing protocol (RIP from BIRD).

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the lesson's topology (`PLAN`), its experiments and `RECORDINGS`
    `addressing.py`: addresses, masks and routing tables as data (the standard library's `ipaddress`)
    `checks.py`: notebook 11's exercises
    `commands.py`: its subcommand of `python -m netlab` (`routes`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("11",)
# `netlab.routes` is this lesson's experiments module.
FACE_MODULE = "routes"
FACE_NAMES = ()
