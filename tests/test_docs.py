"""The documents a clone ships with: links that resolve, a licence, and install steps that agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "bench" / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*/README.md")]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(document: Path) -> list[str]:
    """The targets of the document's Markdown links that are not URLs or in-page anchors."""
    targets = [target.split("#")[0] for target in LINK.findall(document.read_text(encoding="utf-8"))]
    return [target for target in targets if target and not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_clone(document):
    """Each relative link in the shipped documents points at a file or folder in the repository."""
    broken = [
        target
        for target in relative_links(document)
        if not (document.parent / target).resolve().is_relative_to(ROOT) or not (document.parent / target).exists()
    ]
    assert broken == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_document_points_outside_the_clone(document):
    """No document sends a reader to design notes a clone does not have (../shared/DESIGN.md)."""
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text and "DESIGN.md" not in text


def test_the_architecture_notes_are_linked_from_the_readme():
    """The README links docs/architecture.md, where the layers and rules are described."""
    assert "docs/architecture.md" in relative_links(ROOT / "README.md")


def test_the_licence_is_mit_as_pyproject_says():
    """LICENSE holds the MIT licence for "wsdaemon contributors", and pyproject.toml declares MIT."""
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License\n")
    assert "Copyright (c) wsdaemon contributors" in licence
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in licence
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "MIT"}


def commands(lines: list[str]) -> list[str]:
    """Shell command lines without comment-only lines and trailing comments."""
    stripped = (re.sub(r"\s+#.*$", "", line).strip() for line in lines)
    return [line for line in stripped if line and not line.startswith("#")]


def readme_install_commands() -> list[str]:
    """The commands of the README's two install blocks (service, then socket activation)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("Install steps, as root") : text.index("\nThen:\n")]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    return [command for block in blocks for command in commands(block.splitlines())]


def unit_install_commands() -> list[str]:
    """The commands in the install comment at the top of etc/wsdaemon.service."""
    text = (ROOT / "etc" / "wsdaemon.service").read_text(encoding="utf-8")
    header = text[: text.index("\n[Unit]")]
    return [
        line[len("#   ") :] for line in header.splitlines() if line.startswith("#   ") and "[[listeners]]" not in line
    ]


def test_the_units_install_comment_and_the_readme_give_the_same_steps():
    """etc/wsdaemon.service's install comment lists exactly the README's install commands, in order."""
    assert unit_install_commands() == readme_install_commands()
    assert readme_install_commands()[-1].startswith("systemctl daemon-reload && systemctl enable --now wsdaemon.socket")


def test_the_readme_says_to_name_a_passed_socket():
    """Next to the systemd:...:name= listener, the README says why: Twisted needs LISTEN_FDNAMES (--fdname)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index('endpoint = "systemd:domain=INET6:name=wsdaemon-https"') :][:1500]
    assert "LISTEN_FDNAMES" in section and "--fdname=" in section and "index=0" in section


def test_every_builtin_handler_option_is_in_the_readme_and_the_sample_config():
    """Each option a built-in handler declares is named in the README's handler table and in etc/wsdaemon.toml."""
    from wsdaemon.plugins import discover_handlers

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sample = (ROOT / "etc" / "wsdaemon.toml").read_text(encoding="utf-8")
    table = {row.split("|")[1].strip().strip("`"): row for row in readme.splitlines() if row.startswith("| `")}
    missing = [
        f"{name}.{option}"
        for name, plugin in discover_handlers().items()
        if name in ("echo", "broadcast", "process", "tcp")
        for option in plugin.options
        if f"`{option}`" not in table.get(name, "") or not re.search(rf"^#\s+{option} = ", sample, re.MULTILINE)
    ]
    assert missing == []
