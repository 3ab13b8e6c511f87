"""Build vendor/vega/dvc_plots.html: DVC's plots page with vega, vega-lite and vega-embed inlined (no CDN).

    python scripts/vendor_vega.py          # npm pack the pinned versions, check their sha512, write the template

`dvc plots show` and `dvc plots diff` use it through `.dvc/config` (`plots.html_template`), so the page
draws every plot with no network. DVC fills ``{plot_divs}`` (and ``{refresh_tag}``); the template has no
``{scripts}`` placeholder, so DVC's own CDN <script> tags are left out. Versions and licences:
vendor/vega/README.md.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

from danet_music2vec.atomic import atomic_path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "vendor" / "vega" / "dvc_plots.html"
# The last releases of the majors DVC's templates are written for (vega-lite v5 schema): (package, version,
# build file, the npm registry's sha512 of the tarball). vega-lite and vega-embed need the globals defined before them.
PINNED = (
    ("vega", "5.33.1", "build/vega.min.js",
     "1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw=="),
    ("vega-lite", "5.23.0", "build/vega-lite.min.js",
     "l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA=="),
    ("vega-embed", "6.29.0", "build/vega-embed.min.js",
     "PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q=="),
)  # fmt: skip

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC plots</title>
    <!-- {versions}: inlined from their npm packages by scripts/vendor_vega.py (BSD-3-Clause; notes: vendor/vega/README.md) -->
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def build_file(package: str, version: str, member: str, sha512: str, workdir: Path) -> str:
    """The text of ``member`` in the npm tarball of ``package@version``, after checking the tarball's sha512."""
    name = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=workdir, check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]  # fmt: skip
    tarball = workdir / name
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != sha512:
        raise SystemExit(f"{tarball}: sha512 {digest} is not the pinned {sha512}; check the version in PINNED")
    with tarfile.open(tarball) as archive:
        text = archive.extractfile(f"package/{member}").read().decode("utf-8")
    # An inlined script ends at the first "</script"; DVC replaces these placeholders anywhere in the page.
    for forbidden in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
        if forbidden in text:
            raise SystemExit(f"{package}@{version} {member} contains {forbidden!r}: it cannot be inlined as it is")
    return text


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scripts = "\n".join(
            f"    <script>/* {package}@{version} {member} */\n{build_file(package, version, member, sha512, Path(tmp))}\n    </script>"
            for package, version, member, sha512 in PINNED
        )
    versions = ", ".join(f"{package}@{version}" for package, version, _, _ in PINNED)
    with atomic_path(TEMPLATE) as out:
        out.write_text(PAGE.format(versions=versions, scripts=scripts), encoding="utf-8")
    print(f"{TEMPLATE.relative_to(REPO)}: {TEMPLATE.stat().st_size} bytes ({versions})")


if __name__ == "__main__":
    main()
