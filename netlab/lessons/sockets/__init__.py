"""Notebook 02: what each socket call puts on the wire, TCP as a byte stream, UDP for contrast.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebook 02's exercises

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("02",)
FACE_MODULE = None  # no `netlab.NAME` for the module itself
# Experiments a notebook calls as `netlab.NAME`.
FACE_NAMES = (
    "Datagrams", "one_send_many_recvs", "run_server", "short_read", "socket_walk", "two_clients",
    "two_sends_one_recv", "udp_exchange", "udp_loss", "walk_steps",
)
