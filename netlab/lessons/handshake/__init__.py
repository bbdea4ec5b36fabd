"""Notebooks 00, 01 and 03: the TCP handshake and teardown, a refused connection, the delayed ACK with
Nagle's algorithm, a restart during TIME-WAIT.

The lesson's package (see `netlab.lessons`):

    `experiments.py`: the experiments and `RECORDINGS` (the captures shipped in netlab/data)
    `checks.py`: notebooks 00, 01 and 03's exercises
    `commands.py`: its subcommands of `python -m netlab` (`handshake`, `refused`)

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("00", "01", "03")
FACE_MODULE = None  # no `netlab.NAME` for the module itself
# Experiments a notebook calls as `netlab.NAME`.
FACE_NAMES = (
    "handshake", "nagle", "refused", "restart_server",
)
