"""The command line explains itself: every command and option has help, and the top level names the first steps."""

import argparse

from edge_fer.cli import build_parser, main


def every_action(parser, path=("edge-fer",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), None, sub.description or next(
                    (c.help for c in action._choices_actions if c.dest == name), None)
                yield from every_action(sub, path + (name,))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action, action.help


def test_every_command_and_option_has_help():
    missing = [" ".join(path) + (f" {'/'.join(action.option_strings) or action.dest}" if action else "")
               for path, action, text in every_action(build_parser()) if not text]
    assert not missing, missing


def test_the_top_level_help_leads_to_the_first_steps(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    assert "edge-fer run" in text and "edge-fer pick" in text and "edge-fer doctor" in text
    assert "parse arguments" not in text  # speaks of what it does for the user, not of its code
