"""Notebook 14 (in progress): sharing a bottleneck: fairness, queue management and ECN.

The lesson's package (see `netlab.lessons`):

    `queues.py`: RED and CoDel, queue disciplines for the delay line's own queue
    `fairness.py`: Jain's fairness index and the shares of a bottleneck

This file only says which notebooks the lesson serves and what the face offers of it; it imports
nothing, so finding the lessons stays cheap.
"""

# The notebooks this lesson serves (by number): the lessons are taken in this order.
NOTEBOOKS = ("14",)
# No experiments module yet: the face offers nothing of this lesson.
FACE_MODULE = None
FACE_NAMES = ()
