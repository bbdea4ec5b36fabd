"""Copies flagged (#28 item 6): near-identical answers, by normalised tokens, and shared captures."""

from __future__ import annotations

from netlab.classroom import copies

SOLUTION = '''
def internet_checksum(data):
    if len(data) % 2:
        data += b"\\x00"  # an odd last byte is the high byte of a word whose low byte is zero
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)  # fold the carries back in
    return ~total & 0xFFFF
'''

RENAMED = '''
def checksum_of(payload):
    # my own work, honest
    if len(payload) % 2:
        payload += b"\\0"
    s = sum(int.from_bytes(payload[k:k + 2], "little") for k in range(0, len(payload), 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
'''

OWN = '''
def internet_checksum(data):
    words = [data[i] << 8 | (data[i + 1] if i + 1 < len(data) else 0) for i in range(0, len(data), 2)]
    total = 0
    for word in words:
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return 0xFFFF - total
'''


def test_names_comments_and_layout_do_not_hide_a_copy():
    assert copies.tokens(SOLUTION) == copies.tokens(RENAMED.replace('"little"', '"big"'))
    found = copies.copied({"ann": RENAMED, "bob": OWN, "cat": OWN.replace("total", "acc")}, SOLUTION)
    assert found == {"ann": ["instructor"], "bob": ["cat"], "cat": ["bob"]}


def test_short_answers_are_never_flagged_since_every_right_one_looks_alike():
    assert copies.copied({"ann": "answer = 6", "bob": "answer = 6"}, "answer = 8760 // 1460") == {}


def test_one_capture_handed_in_by_two_students_is_a_copy():
    found = copies.copied({"ann": "port = 1", "bob": "port = 1", "cat": "port = 2"}, None,
                          {"ann": ["a1b2"], "bob": ["a1b2"], "cat": ["ffff"]})
    assert found == {"ann": ["bob"], "bob": ["ann"]}
