"""What runs inside the lab: programs started in its namespaces, standard library only.

Rules for this folder:
1. It imports no analysis (conversation, drawing, pcap reading, the lab's notebook side): a
   program here hands the notebook side raw frames with the kernel's times, as a pcap file or as
   bytes (an import-linter contract in pyproject.toml checks it). scapy is loaded only where a
   program needs it: to compile a capture filter, and by the scripted peer to build its frames.
2. The notebook side gives each program its order and reads its results; it never shares a
   process with one.
"""
