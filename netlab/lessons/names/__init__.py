"""Notebook 12: names and the home network — DNS as a system (Unbound, NSD), DHCP (dnsmasq), NAT (nftables).

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the lesson's topology (`PLAN`), its daemons, its experiments and `RECORDINGS`
    `zones.py`: the DNS zones as data, and the zone files and configurations written from them
    `checks.py`: notebook 12's exercises
    `commands.py`: its subcommand of `python -m netlab` (`names`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("12",)
# `netlab.names` is this lesson's experiments module.
FACE_MODULE = "names"
FACE_NAMES = ()
