"""What runs inside the lab: programs started in its namespaces, standard library only.

Rules for this folder:
1. It imports no analysis (conversation, drawing, pcap reading) and no scapy: a program here
   starts in tens of milliseconds and hands the notebook side raw frames with the kernel's times,
   as a pcap file or as bytes (an import-linter contract in pyproject.toml checks it).
2. The notebook side gives each program its order and reads its results; it never shares a
   process with one.
"""
