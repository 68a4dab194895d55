"""Progress counts: in place on a terminal, a line each in a log (`gateway.util.progress`)."""

from __future__ import annotations

import io

from gateway.util.progress import step_line


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_update_and_no_carriage_returns():
    log = io.StringIO()
    step_line("base: 8/22 answered", last=False, stream=log)
    step_line("base: 22/22 answered", last=True, stream=log)
    assert log.getvalue() == "base: 8/22 answered\nbase: 22/22 answered\n"


def test_a_terminal_redraws_in_place_and_ends_the_line_once():
    tty = _Terminal()
    step_line("base: 8/22 answered", last=False, stream=tty)
    step_line("base: 22/22 answered", last=True, stream=tty)
    assert tty.getvalue() == "\rbase: 8/22 answered\rbase: 22/22 answered\n"
