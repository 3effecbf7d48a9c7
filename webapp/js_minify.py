"""A safe JavaScript minifier for the app shell: comments and spacing out, every token kept.

The source is parsed with tree-sitter (tree-sitter-javascript), so strings, template literals
(with any ``${}`` nesting) and regular expression literals are whole tokens that are copied byte
for byte. Only the gaps between tokens change, each to the least that keeps the same tokens:

- a gap with a line break (in whitespace or inside a comment) becomes one "\\n", so automatic
  semicolon insertion and the "no line break here" rules (``return``, ``x++``) read as written;
- any other gap becomes "", or " " where two tokens would otherwise run together (``return x``,
  ``a + +b``, ``a - --b``, ``a / /re/``, ``1 .toString()``, ``/re/ in x``).

Identifiers are kept as written (no renaming), so the served code reads like the source.

Anything unexpected makes :func:`minify` hand back the source as written, with a warning logged:
a parse with an ERROR or MISSING node, an HTML-like comment (``<!--``), text between two tokens
that is not whitespace or a comment, or an output that reads differently (other tokens, or a
line break more or less between two of them).
"""

from __future__ import annotations

import bisect
import functools
import logging

import tree_sitter
import tree_sitter_javascript

log = logging.getLogger(__name__)

LANGUAGE = tree_sitter.Language(tree_sitter_javascript.language())
# Tokens whose text is copied whole: nothing inside them is spacing.
ATOMIC = {"string", "regex"}
# What comes before a token.
NOTHING, SPACING, LINE_BREAK = 0, 1, 2
LINE_BREAKS = (b"\n", b"\r", "\u2028".encode(), "\u2029".encode())
# Every JavaScript punctuator: a gap between two of them stays " " when the pair would read as a
# longer one (`+ +` is not `++`).
PUNCTUATORS = """
{ } ( ) [ ] . ... ; , < > <= >= == != === !== + - * / % ** ++ -- << >> >>> & | ^ ! ~
&& || ?? ? ?. : = += -= *= /= %= **= <<= >>= >>>= &= |= ^= &&= ||= ??= =>
""".split()  # noqa: SIM905 (the table as the language spec lays it out)
PUNCTUATOR_PREFIXES = frozenset(p[:n] for p in PUNCTUATORS for n in range(1, len(p) + 1))
# Pairs of characters that would start a comment if they met: `a / /re/`, `a < !--b`.
COMMENT_STARTS = ("//", "/*", "<!")


class NotMinifiedError(ValueError):
    """The source is served as written; the message says why."""


# A token: its start and end byte, and its tree-sitter type ("template" for a literal run).
Token = tuple[int, int, str]


def tokens(source: bytes) -> tuple[list[Token], list[tuple[int, int]]]:
    """The source's tokens in order, and its comments' byte ranges, in order.

    Raises NotMinifiedError when tree-sitter could not parse the source cleanly.
    """
    tree = tree_sitter.Parser(LANGUAGE).parse(source)
    if tree.root_node.has_error:
        raise NotMinifiedError("tree-sitter found a syntax error (an ERROR or MISSING node)")
    found: list[Token] = []
    comments: list[tuple[int, int]] = []
    _walk(tree.root_node, found, comments)
    return found, comments


def _walk(root: tree_sitter.Node, found: list[Token], comments: list[tuple[int, int]]) -> None:
    # Depth first with a cursor (it stays inside root's subtree): leaves and whole tokens only.
    cursor = root.walk()
    while True:
        node = cursor.node
        kind = node.type
        if kind == "comment":
            comments.append((node.start_byte, node.end_byte))
        elif kind == "html_comment":
            raise NotMinifiedError(f"an HTML-like comment at byte {node.start_byte}")
        elif kind == "template_string":
            _template(node, found, comments)
        elif kind in ATOMIC or node.child_count == 0:
            if node.end_byte > node.start_byte:  # nothing to write for an empty one
                found.append((node.start_byte, node.end_byte, kind))
        elif cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def _template(node: tree_sitter.Node, found: list[Token], comments: list[tuple[int, int]]) -> None:
    # The literal runs as JavaScript reads them, each one token: "`...${", "}...${" and "}...`"
    # (or "`...`"). The code inside each ${ } is walked as any other code.
    start = node.start_byte
    for child in node.children:
        if child.type == "template_substitution":
            inner = child.children
            if len(inner) < 2 or inner[0].type != "${" or inner[-1].type != "}":
                raise NotMinifiedError(f"an unexpected ${{}} at byte {child.start_byte}")
            found.append((start, inner[0].end_byte, "template"))
            for part in inner[1:-1]:
                _walk(part, found, comments)
            start = inner[-1].start_byte
    found.append((start, node.end_byte, "template"))


def _is_word(char: str) -> bool:
    return char.isalnum() or char in "_$\\#" or not char.isascii()


def reading(source: bytes) -> list[tuple[bytes, str, int]]:
    """How JavaScript reads the source: each token's text and type, and what comes before it:
    NOTHING, SPACING (whitespace or comments on one line) or a LINE_BREAK.

    Raises NotMinifiedError when the source is not only tokens, whitespace and comments.
    """
    found, comments = tokens(source)
    read, end = [], 0
    for start, token_end, kind in found:
        read.append((source[start:token_end], kind, _gap(source, end, start, comments)))
        end = token_end
    _gap(source, end, len(source), comments)
    return read


def _gap(source: bytes, start: int, end: int, comments: list[tuple[int, int]]) -> int:
    """What the text between two tokens is, checked to be only whitespace and comments."""
    if start == end:
        return NOTHING
    gap = source[start:end]
    if not gap.isspace():  # more than ASCII whitespace: it must be comments and whitespace
        rest, pos = [], start
        i = bisect.bisect_left(comments, (start, start))
        while i < len(comments) and comments[i][0] < end:
            rest.append(source[pos : comments[i][0]])
            pos = comments[i][1]
            i += 1
        rest.append(source[pos:end])
        if b"".join(rest).decode("utf-8").strip():
            raise NotMinifiedError(f"text that is not a token at byte {start}: {gap[:40]!r}")
    # A line break in a comment counts too: `return /*\n*/ x` returns undefined.
    return LINE_BREAK if any(brk in gap for brk in LINE_BREAKS) else SPACING


def _needs_space(left: bytes, left_kind: str, right: bytes) -> bool:
    last, first = chr(left[-1]), chr(right[0])  # a non-ASCII byte reads as a word character
    if (_is_word(last) or left_kind == "regex") and _is_word(first):
        return True  # return x, 1 in y, /re/ instanceof RegExp
    if left_kind == "number" and first == ".":
        return True  # 1 .toString()
    if last + first in COMMENT_STARTS:
        return True  # a / /re/, a < !b
    return left.decode("utf-8") + first in PUNCTUATOR_PREFIXES  # a + +b, a - -b, a + ++b


def _minify(source: bytes) -> bytes:
    read = reading(source)
    out: list[bytes] = []
    left, left_kind = b"", ""
    for token, kind, gap in read:
        if not out:
            pass  # nothing before the first token
        elif gap == LINE_BREAK:
            out.append(b"\n")
        elif gap == SPACING and _needs_space(left, left_kind, token):
            out.append(b" ")
        out.append(token)
        left, left_kind = token, kind
    minified = b"".join(out)

    # The output must read as the same tokens with the same line breaks between them.
    def breaks(read: list[tuple[bytes, str, int]]) -> list[tuple[bytes, bool]]:
        return [(token, i > 0 and gap == LINE_BREAK) for i, (token, _, gap) in enumerate(read)]

    if breaks(reading(minified)) != breaks(read):
        raise NotMinifiedError("the minified text reads differently from the source")
    return minified


@functools.lru_cache(maxsize=512)
def minify(source: bytes, name: str = "<script>") -> bytes:
    """The script without comments and with the least spacing; the source itself when unsure.

    Cached by content, since every app built in one process (the tests build many) serves the
    same files.
    """
    try:
        return _minify(source)
    except (NotMinifiedError, UnicodeDecodeError) as exc:
        log.warning("%s is served as written, not minified: %s", name, exc)
        return source
