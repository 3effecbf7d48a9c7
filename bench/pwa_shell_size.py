"""The app shell's size, gzipped, against its 60 KB budget (issue: "The phone app").

The shell is what a phone downloads to run the app: the HTML, CSS and JavaScript under static/
and the service worker, without icons (fetched once, at install). index.html and sw.js are
measured as webapp/pwa.py serves them (with the module preload links, the version and the
precache list written in), and the stylesheet and scripts as served too: minified (rcssmin,
webapp/js_minify.py). Each file is gzipped on its own, as a server sends it. The sources' own
gzipped total is printed beside it.

    .venv/bin/python bench/pwa_shell_size.py

Prints each file, the total and the ratio to the budget (below 1.0 is within it). The budget is
60 KB = 61,440 bytes. The figure at gzip level 6 (a typical server setting) is the one that
counts; level 9 is shown too. Exits 1 when the shell is over budget.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webapp.pwa import DEFAULT_STATIC, build_shell  # noqa: E402

BUDGET = 60 * 1024
SHELL_SUFFIXES = (".html", ".css", ".js", ".mjs")


def shell_files() -> list[tuple[str, bytes, bytes]]:
    """(name, bytes as served, bytes of the source) for every shell file."""
    static = Path(DEFAULT_STATIC)
    shell = build_shell(str(static))
    sw_source = Path(ROOT, "service_worker", "sw.js").read_bytes()
    files = [
        ("/ (index.html, as served)", shell.index_html, shell.index_html),
        ("/sw.js (as served)", shell.sw_js, sw_source),
    ]
    for path in sorted(static.rglob("*")):
        rel = path.relative_to(static).as_posix()
        if not path.is_file() or rel.startswith("icons/") or rel == "index.html":
            continue
        if path.suffix in SHELL_SUFFIXES:
            source = path.read_bytes()
            files.append((f"/static/{rel}", shell.assets.get(rel, source), source))
    return files


def main() -> int:
    files = shell_files()
    total_raw = total_6 = total_9 = total_source = 0
    print(f"{'file':<44}{'raw':>9}{'gzip -6':>10}{'gzip -9':>10}{'source -6':>11}")
    for name, data, source in files:
        g6 = len(gzip.compress(data, compresslevel=6, mtime=0))
        gs = len(gzip.compress(source, compresslevel=6, mtime=0))
        total_source += gs
        g9 = len(gzip.compress(data, compresslevel=9, mtime=0))
        total_raw, total_6, total_9 = total_raw + len(data), total_6 + g6, total_9 + g9
        print(f"{name:<44}{len(data):>9,}{g6:>10,}{g9:>10,}{gs:>11,}")
    total = f"total ({len(files)} files)"
    print(f"{total:<44}{total_raw:>9,}{total_6:>10,}{total_9:>10,}{total_source:>11,}")
    ratio = total_6 / BUDGET
    print(
        f"\nApp shell gzipped: {total_6 / 1024:.1f} KB of the {BUDGET // 1024} KB budget "
        f"(ratio {ratio:.2f}; gzip -9: {total_9 / 1024:.1f} KB, ratio {total_9 / BUDGET:.2f})"
    )
    print(
        f"Unminified CSS and JavaScript would make it {total_source / 1024:.1f} KB "
        f"(ratio {total_source / BUDGET:.2f})"
    )
    manifest = Path(DEFAULT_STATIC) / "manifest.webmanifest"
    if manifest.exists():
        size = len(gzip.compress(manifest.read_bytes(), compresslevel=6, mtime=0))
        print(f"(not counted: manifest.webmanifest {size:,} B gzipped; icons)")
    return 0 if ratio <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
