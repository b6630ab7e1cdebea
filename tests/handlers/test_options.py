"""OptionReader (wsdaemon.handlers.options): typed handler options, each mistake named."""

from __future__ import annotations

import pytest

from wsdaemon.handlers.options import REQUIRED, OptionReader
from wsdaemon.interfaces import HandlerOptionsError, InvalidHandlerOptions


def error(call) -> HandlerOptionsError:
    with pytest.raises(HandlerOptionsError) as raised:
        call()
    return raised.value


def test_absent_options_take_their_defaults():
    """An option that is not given reads as its default."""
    read = OptionReader({})
    assert read.integer("n", 5, 1, 10) == 5
    assert read.number("t", 2.5, 0, 10) == 2.5
    assert read.boolean("b", True) is True
    assert read.string("s", "x") == "x"
    assert read.choice("c", "a", ("a", "b")) == "a"
    assert read.strings("l", ("p",)) == ("p",)
    assert read.string_table("e") == {}


def test_required_option_that_is_absent_is_reported_as_missing():
    """A REQUIRED option that is absent raises with got = "missing"."""
    problem = error(lambda: OptionReader({}).integer("port", REQUIRED, 1, 65535))
    assert (problem.option, problem.got) == ("port", "missing")
    assert problem.expected == "an integer from 1 to 65535"


def test_booleans_are_not_numbers():
    """TOML true is not accepted where an integer or a number is expected."""
    assert error(lambda: OptionReader({"n": True}).integer("n", 1, 0, 10)).option == "n"
    assert error(lambda: OptionReader({"t": False}).number("t", 1.0, 0, 10)).option == "t"


def test_numbers_are_range_checked_and_integers_become_floats():
    """An integer is a fine number (as a float); values outside the range are refused."""
    assert OptionReader({"t": 3}).number("t", 1.0, 0, 10) == 3.0
    assert error(lambda: OptionReader({"n": 11}).integer("n", 1, 0, 10)).expected == "an integer from 0 to 10"
    assert error(lambda: OptionReader({"t": 10.5}).number("t", 1.0, 0, 10)).got == 10.5


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("string", ""),
        ("string", 3),
        ("strings", []),
        ("strings", "cat"),
        ("strings", ["cat", ""]),
        ("string_table", {"A": 1}),
        ("string_table", "A=1"),
    ],
)
def test_wrong_shapes_are_refused(method, value):
    """Empty strings, non-lists and tables with non-string values raise HandlerOptionsError naming the option."""
    problem = error(lambda: getattr(OptionReader({"o": value}), method)("o"))
    assert problem.option == "o" and problem.got == value


def test_choice_lists_the_choices():
    """A value outside the choices is reported with every choice quoted."""
    problem = error(lambda: OptionReader({"mode": "lines"}).choice("mode", "text", ("text", "binary")))
    assert problem.expected == 'one of "text", "binary"'


# --- every bad option at once (collect=True) ----------------------------------------------------


def test_a_collecting_reader_reports_every_bad_option_together():
    """With collect=True, reading goes on past bad options and check() raises them all in one error."""
    read = OptionReader({"n": "ten", "b": 1, "mode": "lines"}, collect=True)
    assert read.integer("n", 5, 1, 10) == 5  # the default stands in
    assert read.integer("port", REQUIRED, 1, 65535) == 1  # a stand-in for a missing required option
    assert read.boolean("b", True) is True
    assert read.choice("mode", "text", ("text", "binary")) == "text"
    assert read.string("host") == "" and read.strings("command") == ()
    problem = error(read.check)
    assert isinstance(problem, InvalidHandlerOptions)
    assert [(each.option, each.got) for each in problem.errors] == [
        ("n", "ten"),
        ("port", "missing"),
        ("b", 1),
        ("mode", "lines"),
        ("host", "missing"),
        ("command", "missing"),
    ]
    assert (problem.option, problem.got) == ("n", "ten")  # still usable as the first HandlerOptionsError


def test_a_collecting_reader_with_one_problem_raises_just_that_one():
    """One bad option is raised as a plain HandlerOptionsError; no problem, no error."""
    read = OptionReader({"n": 0}, collect=True)
    read.integer("n", 5, 1, 10)
    problem = error(read.check)
    assert type(problem) is HandlerOptionsError and problem.errors == (problem,)
    OptionReader({}, collect=True).check()


def test_handler_checks_of_their_own_are_collected_too():
    """report() adds a handler's own finding to the same list (and raises at once without collect)."""
    read = OptionReader({}, collect=True)
    read.report("command", "an executable program", "/nope")
    assert error(read.check).option == "command"
    assert error(lambda: OptionReader({}).report("x", "y", "z")).option == "x"


def test_several_errors_flatten_and_read_as_one_message():
    """InvalidHandlerOptions of InvalidHandlerOptions is flat, and its text names every option."""
    inner = InvalidHandlerOptions(
        [HandlerOptionsError("a", "an integer", "x"), HandlerOptionsError("b", "a string", 1)]
    )
    outer = InvalidHandlerOptions([inner, HandlerOptionsError("c", "true or false", 2)])
    assert [each.option for each in outer.errors] == ["a", "b", "c"]
    assert (
        str(outer) == "a: expected an integer, got 'x'; b: expected a string, got 1; c: expected true or false, got 2"
    )
    with pytest.raises(ValueError):
        InvalidHandlerOptions([])
