"""One module per notebook, built on `netlab.core`; no lesson imports another.

    handshake    03 · the TCP handshake and teardown, a refused connection
    sockets      02 · what each socket call puts on the wire, TCP as a byte stream, UDP
    http         04 · the lab web server for a notebook, keep-alive captured
    transfer     05 · the scripted peer: segmentation, flow control, loss, retransmission
    failures     06 · each failure in code and on the wire
    concurrency  07 · one echo protocol served by threads, selectors and asyncio
    bulk         07 · one connection as fast as it goes, beside iperf3
    tls          08 · certificates made at run time, HTTP against HTTPS

A new notebook's experiments go in a new module here, with its `RECORDINGS` named in
`netlab.recordings.LESSONS`, and its module name in the face (`netlab/__init__.py`).
"""
