"""What the README and docs tell people to run works as written on a fresh clone: their links stay in
the repository, every documented ``manage.py`` command exists and parses, the runnable snippets run
(here, against a scratch database), and the CI examples send every check production requires."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

from deployments.gate.services import STRICT_PRODUCTION_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")
SHELL = {"sh", "bash", "shell", ""}
SHELL_OPERATORS = {"|", "||", "&&", ";", "&"}


def shell_commands(path: Path) -> list[str]:
    """Each command of the document's shell blocks, continuation lines joined, comments dropped."""
    commands = []
    for language, body in FENCE.findall(path.read_text()):
        if language not in SHELL:
            continue
        for command in body.replace("\\\n", " ").splitlines():
            command = command.split(" # ", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def manage_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in DOCUMENTS:
        for command in shell_commands(path):
            if not re.search(r"(^|\s)(\S*/)?manage\.py(\s|$)", command):
                continue
            words = [word.rsplit("/", 1)[-1] if word.endswith("manage.py") else word for word in shlex.split(command)]
            if "manage.py" in words:
                args = words[words.index("manage.py") + 1 :]
                # The command's own arguments end where the shell takes over (a redirection, a pipe, `&&`).
                ends = [i for i, word in enumerate(args) if word in SHELL_OPERATORS or word.startswith((">", "2>"))]
                found.append((f"{path.name}: {command}", args[: ends[0]] if ends else args))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_points_inside_the_repository(document):
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (document.parent / target.split("#", 1)[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name} links outside the repository: {target}"
        assert resolved.exists(), f"{document.name} links to a missing file: {target}"


def test_shell_snippets_call_manage_py_through_the_projects_python():
    for path in DOCUMENTS:
        for command in shell_commands(path):
            if re.search(r"(^|\s)manage\.py\s", command):
                assert ".venv/bin/python manage.py" in command, f"{path.name}: {command!r} does not run as written"


@pytest.mark.parametrize(("where", "argv"), manage_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_documented_manage_py_command_exists_and_its_options_parse(where, argv):
    from django.conf import settings

    guide = where.split(":", 1)[0].removesuffix(".md")
    if guide in settings.INTEGRATIONS and guide not in settings.PORTAL_INTEGRATIONS:
        pytest.skip(f"{where}: the {guide} integration is not installed in this run (PORTAL_INTEGRATIONS)")
    name, args = argv[0], argv[1:]
    commands = get_commands()
    assert name in commands, f"{where}: no management command {name!r}"
    # [optional] parts are tried too; <placeholders> stand for a value.
    args = [re.sub(r"^<(.+)>$", r"\1", arg.strip("[]")) for arg in args if arg.strip("[]")]
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    parser.parse_args(args)  # a bad option or choice exits (SystemExit) and fails the test


def test_the_production_ci_examples_send_every_required_check():
    text = (ROOT / "docs" / "ci-integration.md").read_text()
    required = set(STRICT_PRODUCTION_DEFAULTS["required_checks"])
    examples = [body for _, body in FENCE.findall(text) if "--environment production" in body]
    assert len(examples) >= 3  # GitHub Actions, GitLab CI, Jenkins
    for body in examples:
        sent = set(re.findall(r"--check ([\w-]+)=success", body))
        assert required <= sent, f"missing {sorted(required - sent)} in:\n{body}"


def test_the_documented_token_command_runs_as_written_in_development(tmp_path):
    """A fresh clone after ``make run``: the .env it writes (DJANGO_DEBUG=1) is all manage.py needs —
    no DJANGO_SECRET_KEY to export by hand."""
    env_file = tmp_path / ".env"
    env_file.write_text("# what make run writes\nDJANGO_DEBUG=1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "DATABASE_URL"))}
    env.update(
        PORTAL_ENV_FILE=str(env_file),
        PORTAL_VAR_DIR=str(tmp_path / "var"),
        CELERY_BROKER_URL="memory://",
        PORTAL_INTEGRATIONS="",
    )

    def run(*args):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    run("migrate", "--noinput")
    run("load_demo_data")
    documented = next(
        argv for where, argv in manage_commands() if argv[0] == "create_api_token" and "ci-integration" in where
    )
    out = run(*documented)
    assert "dap_" in out
