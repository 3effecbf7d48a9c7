"""The shell's scripts are served minified (webapp/js_minify.py): same tokens, same line breaks.

Every served module is checked against its source with a tree-sitter walk of this file's own
(every leaf, and strings, regexes and template literal runs whole), and the tricky cases are
pinned both as text and by running source and output in node.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_javascript
from flask import Flask

from webapp import js_minify, pwa
from webapp.js_minify import minify

ROOT = Path(__file__).resolve().parents[2]
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_javascript.language()))
MODULES = sorted(
    p.relative_to(ROOT / "static").as_posix() for p in (ROOT / "static/js").rglob("*.js")
)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (`python3 manage.py test` installs it)", pytrace=False)
    return node


def read_as_javascript(source: bytes) -> list[tuple[str, bool]]:
    """Each token's text and whether a line break (maybe inside a comment) comes before it."""
    tree = PARSER.parse(source)
    assert not tree.root_node.has_error, source[:200]
    read: list[tuple[str, bool]] = []
    last_end = 0

    def token(start: int, end: int) -> None:
        nonlocal last_end
        gap = source[last_end:start].decode()
        read.append((source[start:end].decode(), bool(read) and any(c in gap for c in "\n\r")))
        last_end = end

    def visit(node: tree_sitter.Node) -> None:
        if node.type == "comment":
            return
        if node.type == "template_string":
            start = node.start_byte
            for child in node.children:
                if child.type == "template_substitution":
                    token(start, child.start_byte + 2)
                    for part in child.children[1:-1]:
                        visit(part)
                    start = child.end_byte - 1
            token(start, node.end_byte)
        elif node.type in ("string", "regex") or not node.children:
            token(node.start_byte, node.end_byte)
        else:
            for child in node.children:
                visit(child)

    visit(tree.root_node)
    return read


def comments(source: bytes) -> list[bytes]:
    """The text of each comment in the source (a few words at least)."""
    found = []

    def visit(node: tree_sitter.Node) -> None:
        if node.type == "comment" and len(node.text) > 12:
            found.append(node.text)
        for child in node.children:
            visit(child)

    visit(PARSER.parse(source).root_node)
    return found


@pytest.fixture(scope="module")
def shell() -> pwa.Shell:
    return pwa.build_shell(pwa.DEFAULT_STATIC)


def served(shell: pwa.Shell, rel: str) -> bytes:
    return shell.sw_js if rel == "sw.js" else shell.assets[rel]


def source_of(rel: str) -> bytes:
    return (ROOT / "service_worker/sw.js" if rel == "sw.js" else ROOT / "static" / rel).read_bytes()


@pytest.mark.parametrize("rel", [*MODULES, "sw.js"])
def test_every_served_script_is_minified_and_reads_the_same(shell, rel):
    source, text = source_of(rel), served(shell, rel)
    if rel == "sw.js":
        # What build_shell writes in: the version string and the precache array.
        source = source.replace(b'"__VERSION__"', json.dumps(shell.version).encode())
        precache = text.split(b"const PRECACHE=", 1)[1].split(b";", 1)[0]
        source = source.replace(b'"__PRECACHE__"', precache)
    assert len(text) < 0.9 * len(source), f"{rel} was served as written (see the warning log)"
    assert read_as_javascript(text) == read_as_javascript(source)
    for comment in comments(source):
        assert comment not in text


def test_the_served_scripts_are_what_the_app_sends(shell, tmp_path):
    app = Flask(__name__, static_folder=None)
    app.config["STATIC_DIR"] = pwa.DEFAULT_STATIC
    app.register_blueprint(pwa.bp)
    client = app.test_client()
    response = client.get("/static/js/app.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.data == shell.assets["js/app.js"] != source_of("js/app.js")
    again = client.get("/static/js/app.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    sw = client.get("/sw.js")
    assert sw.data == shell.sw_js
    assert sw.headers["X-Shell-Version"] == shell.version
    # Every module is preloaded and precached under the same URL it is served from.
    page = client.get("/").get_data(as_text=True)
    precache = json.loads(sw.data.split(b"const PRECACHE=", 1)[1].split(b";", 1)[0])
    for rel in MODULES:
        assert f'<link rel="modulepreload" href="/static/{rel}">' in page
        assert f"/static/{rel}" in precache
        assert client.get(f"/static/{rel}").data == shell.assets[rel]


def _staged(tmp_path: Path) -> Path:
    staged = tmp_path / "static"
    shutil.copytree(pwa.DEFAULT_STATIC, staged)
    return staged


def test_the_version_follows_sources_and_what_is_served(tmp_path, monkeypatch):
    staged = _staged(tmp_path)
    first = pwa.build_shell(str(staged))
    assert pwa.build_shell(str(staged)).version == first.version
    # A comment-only edit serves the same bytes but is still a new deploy: a new version.
    api = staged / "js/api.js"
    api.write_text(api.read_text() + "\n// deploy 2\n")
    second = pwa.build_shell(str(staged))
    assert second.assets["js/api.js"] == first.assets["js/api.js"]
    assert second.version != first.version
    # Another minifier's output from the same sources is a new version too.
    monkeypatch.setattr(pwa, "minify_js", lambda data, name: data)
    third = pwa.build_shell(str(staged))
    assert third.assets["js/api.js"] == api.read_bytes()
    assert third.version not in (first.version, second.version)
    assert f'"{third.version}"'.encode() in third.sw_js


def test_a_script_with_a_syntax_error_is_served_as_written(tmp_path, caplog):
    staged = _staged(tmp_path)
    broken = b"// half a deploy\nexport function f( {\n  return  1;\n"
    (staged / "js/broken.js").write_bytes(broken)
    with caplog.at_level(logging.WARNING, logger="webapp.js_minify"):
        shell = pwa.build_shell(str(staged))
    assert shell.assets["js/broken.js"] == broken
    assert "js/broken.js is served as written" in caplog.text
    assert shell.assets["js/api.js"] != (staged / "js/api.js").read_bytes()  # the rest is not


@pytest.mark.parametrize(
    "source",
    [
        b"const x = 1;\n<!-- x\n",  # an HTML-like comment: not a comment in a module
        b"let s = 'a\n",  # a string left open
        b"f(a, b\n",  # a MISSING ")"
    ],
)
def test_anything_tree_sitter_doubts_is_served_as_written(source):
    assert minify(source, "doubtful.js") == source


# (source, served): each pins one way a minifier can change what a script means.
CASES = [
    # Nested template literals keep every character of their text, spaces included.
    (
        b"const c = 1, d = 2;\nout(`a${ `b${c} ${ d }` }d`);",
        b"const c=1,d=2;\nout(`a${`b${c} ${d}`}d`);",
    ),
    (b"out(`A${ `${1 + 2}%` }`)", b"out(`A${`${1+2}%`}`)"),
    # A regex with // and /* in it, and strings with // and /* */ in them.
    (
        b'out("x//y/*z*/w".replace(/\\/\\/|[/*]+/g, "-")); // gone\n',
        b'out("x//y/*z*/w".replace(/\\/\\/|[/*]+/g,"-"));',
    ),
    (b"out('http://a/*b*/', \"//\")", b"out('http://a/*b*/',\"//\")"),
    # Automatic semicolon insertion: the line breaks stay where they were.
    (b"function f() {\n  return\n    1;\n}\nout(f());", b"function f(){\nreturn\n1;\n}\nout(f());"),
    (
        b"const g = (x) => x * 2\nconst h = g\n(21)\nout(h)",
        b"const g=(x)=>x*2\nconst h=g\n(21)\nout(h)",
    ),
    (
        b"const arr = [1, 2]\nconst k = arr\n[1]\nout(k)",
        b"const arr=[1,2]\nconst k=arr\n[1]\nout(k)",
    ),
    (
        b"const tag = (s) => s[0] + '!'\nconst t = tag\n`hi`\nout(t)",
        b"const tag=(s)=>s[0]+'!'\nconst t=tag\n`hi`\nout(t)",
    ),
    (b"let i = 1\nlet j = i\n++i\nout(i, j)", b"let i=1\nlet j=i\n++i\nout(i,j)"),
    # A comment that spans lines is a line break: this returns undefined.
    (b"function r() { return /*\n */ 1 }\nout(r())", b"function r(){return\n1}\nout(r())"),
    # Operators that would run together.
    (
        b"let a = 1, b = '2', x = 1, y = 1;\n"
        b"out(a + +b, a - -b, x++ +y, a + ++b, a - --b, x-- - y)",
        b"let a=1,b='2',x=1,y=1;\nout(a+ +b,a- -b,x+++y,a+ ++b,a- --b,x---y)",
    ),
    (
        b"out(1 .toString(), /a/ instanceof RegExp, 2 / /b/.source.length)",
        b"out(1 .toString(),/a/ instanceof RegExp,2/ /b/.source.length)",
    ),
    # Division after ")" is division, and words keep the space between them.
    (
        b"const n = (6) / 2 / 3;\nout(n, typeof n, 'x' in {x: 1})",
        b"const n=(6)/2/3;\nout(n,typeof n,'x'in{x:1})",
    ),
    # An HTML comment inside a template literal is text.
    (
        b"const html = `<!-- note --> <p>${ 'x' }</p>`;\nout(html)",
        b"const html=`<!-- note --> <p>${'x'}</p>`;\nout(html)",
    ),
    (b"out(`${ /* a comment */ 1 }`, `/* not one */`)", b"out(`${1}`,`/* not one */`)"),
]


@pytest.mark.parametrize(("source", "expected"), CASES)
def test_tricky_cases_are_served_exactly_so(source, expected):
    assert minify(source) == expected
    assert read_as_javascript(expected) == read_as_javascript(source)


def test_tricky_cases_do_the_same_in_node():
    """Each case run as written and as served prints the same, and what it should."""

    def run(scripts: list[bytes]) -> list[str]:
        program = "\n".join(
            "{ const said = []; const out = (...v) => said.push(...v);\n"
            + script.decode()
            + "\nconsole.log(JSON.stringify(said)); }"
            for script in scripts
        )
        result = subprocess.run(
            [_node(), "--input-type=module"],
            input=program,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.splitlines()

    as_written = run([source for source, _ in CASES])
    assert run([minify(source) for source, _ in CASES]) == as_written
    assert as_written[0] == '["ab1 2d"]'
    assert as_written[1] == '["A3%"]'
    assert as_written[4] == "[null]"  # `return` alone on its line returns undefined
    assert as_written[5] == "[42]"
    assert as_written[9] == "[null]"


def test_start_up_cost_is_small():
    """A whole shell, minified from cold, in well under a second (cached afterwards)."""
    js_minify.minify.cache_clear()
    start = time.perf_counter()
    pwa.build_shell(pwa.DEFAULT_STATIC)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    pwa.build_shell(pwa.DEFAULT_STATIC)
    warm = time.perf_counter() - start
    assert warm < cold
    assert cold < 5, f"building the shell took {cold:.2f} s"  # generous: a shared, busy machine
