"""Notebook 13: build your own reliable transport over UDP, on the lab's lossy path, and see it as a ladder.

The lesson's package (see `netlab.lessons`):

    `protocol.py`: the header of the student's protocol, a scapy `Packet` bound to the lesson's UDP port
    `path.py`: the lossy path (a sender in the lab, a receiver in a namespace of its own, the delay line between)
    `harness.py`: runs a sender and a receiver the student wrote on that path, apart, and says what it observed
    `experiments.py`: what the notebook calls (`netlab.transport.run`, `utilisation`, `tcp_beside`, ...)
    `checks.py`: notebook 13's exercises (the harness's named cases)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("13",)
# `netlab.transport` is this lesson's experiments module.
FACE_MODULE = "transport"
FACE_NAMES = ()
