"""The command line's numbers (netlab.core.arguments.number_type): one rule for every option that takes one.

Each subcommand's numeric option is parsed by the same helper, so a number out of its bounds, or
text that is no number, is refused in the one line argparse prints, naming what the option takes.
"""

from __future__ import annotations

import argparse

import pytest

from netlab.__main__ import build_parser
from netlab.core.arguments import number_type


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("80", 80), ("65535", 65535), (" 7 ", 7)])
def test_a_whole_number_within_its_bounds_is_that_number(text, value):
    parse = number_type("a port number", 0, 65535)
    assert parse(text) == value and isinstance(parse(text), int)


@pytest.mark.parametrize(("text", "words"), [
    ("65536", ["65536 is not a port number", "from 0 to 65535"]),
    ("-1", ["-1 is not a port number"]),
    ("eighty", ["'eighty' is not a port number", "a whole number from 0 to 65535"]),
    ("8.5", ["'8.5' is not a port number"]),
    ("", ["'' is not a port number"]),
])
def test_a_whole_number_out_of_bounds_or_no_number_is_refused_naming_what_it_takes(text, words):
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        number_type("a port number", 0, 65535)(text)
    for word in words:
        assert word in str(refused.value)


@pytest.mark.parametrize("text", ["nan", "inf", "-0.1", "5.01", "soon"])
def test_a_number_of_seconds_refuses_nan_infinity_and_what_is_out_of_bounds(text):
    with pytest.raises(argparse.ArgumentTypeError, match="a delay in seconds"):
        number_type("a delay in seconds", 0, 5, whole=False)(text)


def test_a_number_of_seconds_takes_fractions_and_both_bounds():
    parse = number_type("a delay in seconds", 0, 5, whole=False)
    assert [parse(t) for t in ("0", "0.2", "5")] == [0.0, 0.2, 5.0]


def test_without_an_upper_bound_the_refusal_says_from_where():
    parse = number_type("a stream number", 0)
    assert parse("123456789") == 123456789
    with pytest.raises(argparse.ArgumentTypeError, match="a whole number from 0 up"):
        parse("-1")


def _numeric_options() -> dict[str, list[argparse.Action]]:
    """Every subcommand's options whose values are numbers, by subcommand."""
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: [a for a in parser._actions if a.type not in (None, str)] for name, parser in commands.choices.items()}


def test_every_numeric_option_of_a_lesson_or_show_uses_the_one_helper():
    # `grade` keeps int and float: grading.grade itself refuses bad limits, in the same one line.
    # `show --segments/--time` take a range A:B, and `grade --shard` a part K/N, not a number.
    others = {(name, a.dest) for name, actions in _numeric_options().items() for a in actions
              if a.type.__qualname__ != number_type("x", 0).__qualname__}
    assert others == {("grade", "workers"), ("grade", "cell_timeout"), ("grade", "notebook_timeout"),
                      ("grade", "shard"), ("show", "segments"), ("show", "time")}
