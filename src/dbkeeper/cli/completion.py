"""dbkeeper completion bash|zsh|fish: a shell completion script, generated from the command line parser itself.

The parser is walked once into a tree (commands, their subcommands, options, which options take a value and the
choices they allow); each shell gets that tree in its own syntax. Nothing is listed by hand, so a new command or
flag completes as soon as it is registered. Values without choices (paths, URLs) fall back to file names.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from dbkeeper.cli.common import add_json, emit_json

SHELLS = ("bash", "zsh", "fish")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description="Print a completion script for SHELL, generated from dbkeeper's own command line. Load it with"
        " `source <(dbkeeper completion bash)` (zsh: `source <(dbkeeper completion zsh)` after compinit; fish:"
        " `dbkeeper completion fish | source`), or save it where your shell looks: bash"
        " ~/.local/share/bash-completion/completions/dbkeeper, zsh a _dbkeeper file on $fpath, fish"
        " ~/.config/fish/completions/dbkeeper.fish.",
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbkeeper.cli import build_parser

    text = script(args.shell, build_parser())
    if args.json:
        emit_json({"shell": args.shell, "script": text})
    else:
        print(text, end="")
    return 0


@dataclass
class Node:
    """One command level: ``path`` is ``""`` for dbkeeper itself, ``"schedule run"`` for a subcommand."""

    path: str
    help: str = ""
    subs: list[Node] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # every option string
    valued: list[str] = field(default_factory=list)  # options that take a value
    choices: dict[str, list[str]] = field(default_factory=dict)  # option -> its allowed values
    option_help: dict[str, str] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)  # the choices of its positional arguments (completion SHELL)

    def walk(self) -> list[Node]:
        return [self, *(n for sub in self.subs for n in sub.walk())]


def tree(parser: argparse.ArgumentParser, path: str = "", about: str = "") -> Node:
    node = Node(path, about)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                node.subs.append(tree(child, f"{path} {name}".strip(), helps.get(name, "")))
        elif not action.option_strings:
            node.words += [str(c) for c in action.choices or ()]
        elif action.option_strings:
            node.flags += action.option_strings
            for flag in action.option_strings:
                node.option_help[flag] = (action.help or "").replace("%%", "%")
            if action.nargs != 0:
                node.valued += action.option_strings
                if action.choices:
                    for flag in action.option_strings:
                        node.choices[flag] = [str(c) for c in action.choices]
    return node


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    root = tree(parser)
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](root)


def _cases(root: Node, fn: str, pick: Any) -> str:
    """A shell function ``fn PATH [OPTION]`` echoing ``pick(node)`` for the command path (a case statement, which
    bash and zsh read alike)."""
    lines = [f"{fn}() {{", '    case "$1" in']
    for node in root.walk():
        for key, words in pick(node):
            if words:
                lines.append(f"        {shlex.quote(key)}) echo {shlex.quote(' '.join(words))} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines)


def _helpers(root: Node) -> str:
    return "\n".join(
        [
            _cases(root, "_dbkeeper_subs", lambda n: [(n.path, [s.path.split()[-1] for s in n.subs])]),
            _cases(root, "_dbkeeper_words", lambda n: [(n.path, n.words)]),
            _cases(root, "_dbkeeper_flags", lambda n: [(n.path, n.flags)]),
            _cases(root, "_dbkeeper_valued", lambda n: [(n.path, n.valued)]),
            _cases(root, "_dbkeeper_choices", lambda n: [(f"{n.path}|{f}", c) for f, c in n.choices.items()]),
            # The command path of the words typed so far: the non-option words that name subcommands, skipping
            # option values.
            "_dbkeeper_path() {",
            '    local path="" word skip=0',
            '    for word in "$@"; do',
            "        if [ $skip = 1 ]; then skip=0; continue; fi",
            '        case "$word" in',
            "            -*=*) ;;",
            '            -*) case " $(_dbkeeper_valued "$path") " in *" $word "*) skip=1 ;; esac ;;',
            '            *) case " $(_dbkeeper_subs "$path") " in *" $word "*) path="${path:+$path }$word" ;; esac ;;',
            "        esac",
            "    done",
            '    echo "$path"',
            "}",
        ]
    )


def _bash(root: Node) -> str:
    return f"""# dbkeeper completion for bash, generated by `dbkeeper completion bash`.
# Load: source <(dbkeeper completion bash)
{_helpers(root)}
_dbkeeper() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" path choices
    path=$(_dbkeeper_path "${{COMP_WORDS[@]:1:COMP_CWORD-1}}")
    COMPREPLY=()
    case " $(_dbkeeper_valued "$path") " in
        *" $prev "*)
            choices=$(_dbkeeper_choices "$path|$prev")
            [ -n "$choices" ] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
            return 0 ;;  # no choices: a path or a URL, bash's default completion
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_dbkeeper_flags "$path")" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$(_dbkeeper_subs "$path") $(_dbkeeper_words "$path")" -- "$cur"))
    fi
}}
complete -o default -F _dbkeeper dbkeeper
"""


def _zsh(root: Node) -> str:
    return f"""#compdef dbkeeper
# dbkeeper completion for zsh, generated by `dbkeeper completion zsh`.
# Load after compinit: source <(dbkeeper completion zsh); or save as _dbkeeper in a directory on $fpath.
{_helpers(root)}
_dbkeeper() {{
    local cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}} path choices
    path=$(_dbkeeper_path ${{words[2,CURRENT-1]}})
    case " $(_dbkeeper_valued "$path") " in
        *" $prev "*)
            choices=$(_dbkeeper_choices "$path|$prev")
            if [[ -n $choices ]]; then compadd -- ${{=choices}}; else _files; fi
            return ;;
    esac
    if [[ $cur == -* ]]; then
        compadd -- ${{=$(_dbkeeper_flags "$path")}}
    else
        local subs="$(_dbkeeper_subs "$path") $(_dbkeeper_words "$path")"
        if [[ -n ${{subs// }} ]]; then compadd -- ${{=subs}}; else _files; fi
    fi
}}
if (( $+functions[compdef] )); then compdef _dbkeeper dbkeeper; fi
"""


def _fish(root: Node) -> str:
    lines = [
        "# dbkeeper completion for fish, generated by `dbkeeper completion fish`.",
        "# Load: dbkeeper completion fish | source",
        "complete -c dbkeeper -e",
    ]

    def cond(node: Node) -> str:
        """True when the words typed so far lead to ``node`` (and to none of its subcommands yet)."""
        parts = node.path.split()
        if not parts:
            return "__fish_use_subcommand"
        seen = " ; and ".join(f"__fish_seen_subcommand_from {p}" for p in parts)
        if node.subs:
            names = " ".join(s.path.split()[-1] for s in node.subs)
            seen += f" ; and not __fish_seen_subcommand_from {names}"
        return seen

    for node in root.walk():
        when = shlex.quote(cond(node))
        for sub in node.subs:
            name = sub.path.split()[-1]
            lines.append(f"complete -c dbkeeper -f -n {when} -a {name} -d {shlex.quote(_short(sub.help))}")
        if node.words:
            lines.append(f"complete -c dbkeeper -f -n {when} -a {shlex.quote(' '.join(node.words))}")
        for flag in node.flags:
            spec = f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"
            takes = ""
            if flag in node.choices:
                takes = f" -x -a {shlex.quote(' '.join(node.choices[flag]))}"
            elif flag in node.valued:
                takes = " -r"
            help_ = shlex.quote(_short(node.option_help.get(flag, "")))
            lines.append(f"complete -c dbkeeper -n {when} {spec}{takes} -d {help_}")
    return "\n".join(lines) + "\n"


def _short(text: str) -> str:
    return text.split(" (")[0].split("; ")[0][:60]
