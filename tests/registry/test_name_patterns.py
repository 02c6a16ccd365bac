"""Every name the service checks refuses a trailing newline (`$` matches before a final `\n`; `\Z` does not)."""

import ast
import re
from pathlib import Path

import pytest

from llmft.auth.keys import TENANT, create_key
from llmft.bases.resolve import HUB_ID, requestable
from llmft.db.session import session_scope
from llmft.registry.service import NAME, REF

LLMFT = Path(__file__).resolve().parents[2] / "llmft"
GOOD = [(NAME, "support-bot"), (REF, "support-bot:2"), (REF, "support-bot@production"), (HUB_ID, "org/model-1.5b"),
        (TENANT, "acme")]


@pytest.mark.parametrize(("pattern", "name"), GOOD)
def test_each_pattern_takes_the_name_and_refuses_it_with_a_newline(pattern, name):
    assert pattern.match(name) and pattern.fullmatch(name)
    for bad in (name + "\n", name + "\r\n", "\n" + name, name + "\nx"):
        assert pattern.match(bad) is None and pattern.fullmatch(bad) is None, repr(bad)


def test_requestable_refuses_a_hub_id_with_a_newline():
    assert requestable("org/model") and requestable("tiny-r1")
    assert not requestable("org/model\n") and not requestable("tiny-r1\n")


def test_a_new_tenant_named_with_a_newline_is_refused(database_url):
    with session_scope(database_url) as session:
        with pytest.raises(ValueError, match="tenant 'acme\\\\n'"):
            create_key(session, tenant="acme\n", role="admin")
        create_key(session, tenant="acme", role="admin")


def test_no_anchored_pattern_in_the_code_ends_with_a_dollar():
    """A name pattern written `^...$` would take `name\\n` again: the code uses `\\Z` (or fullmatch)."""
    found = []
    for path in LLMFT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compile"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                text = node.args[0].value
                flags = " ".join(ast.unparse(arg) for arg in node.args[1:])  # text patterns: lines, or all of it
                if text.startswith("^") and text.endswith("$") and "MULTILINE" not in flags and "DOTALL" not in flags:
                    found.append(f"{path.relative_to(LLMFT.parent)}:{node.lineno} {text}")
    assert found == []
    assert re.compile(r"^a$").match("a\n"), "the reason: $ matches before a final newline"
