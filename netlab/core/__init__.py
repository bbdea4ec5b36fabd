"""netlab's core: what knows no lesson.

The lab and what runs inside it (`lab`, `capture`, `peer`), pcap files and the recordings
(`pcapfiles`), the analysis of any capture (`conversation`) and its pictures (`draw`), the
experiment runner with its one live-or-recorded fallback (`experiment`), socket and HTTP
primitives (`sockets`, `http`), a scripted server that runs a student's client (`scripted`), what
every exercise check shares (`checking`), argument checks and the error family (`arguments`, `errors`).
Nothing here imports `netlab.lessons`, `netlab.checks` or the face (`import-linter` checks it).
"""
