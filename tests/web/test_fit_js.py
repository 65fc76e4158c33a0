"""web/fit.js and layout.js under node: the rule that keeps faces in the picture.

`cover` only while it keeps at least 80 % of the picture, else `contain`; grid tiles
keep the videos' aspect. The real-browser measure is tests/browser/test_layout.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

WEB = Path(str(files("tavkit") / "web"))

_RUN = """
const fit = await import(process.argv[1]);
const layout = await import(process.argv[2]);
process.stdout.write(JSON.stringify({
  desktop: fit.fitFor(640, 480, 1256, 676),     // 4:3 in a 16:8.6 stage: 72 % kept
  nearly: fit.fitFor(640, 480, 1000, 700),      // 4:3 in 10:7: 93 % kept
  phone: fit.fitFor(640, 480, 366, 650),        // 4:3 in a tall phone stage: 42 % kept
  portraitInPhone: fit.fitFor(720, 1280, 366, 650), // 9:16 upright in a tall stage
  unknown: fit.fitFor(0, 0, 366, 650),
  visible: fit.coverVisible(640, 480, 366, 650),
  aspect: fit.tileAspect([[640, 480], [0, 0], [1280, 720]]),
  noAspect: fit.tileAspect([]),
  grid: layout.gridShape(3, 1256, 640, 4 / 3),
  nineDesktop: layout.gridShape(9, 1256, 640, 4 / 3),
  ninePhone: layout.gridShape(9, 366, 688, 4 / 3),
  eightPhone: layout.gridShape(8, 366, 688, 4 / 3),
  nineOnItsSide: layout.gridShape(9, 760, 346, 4 / 3),
}));
"""


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    """What fit.js and layout.js answer for the cases above."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    run = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            _RUN,
            (WEB / "fit.js").as_uri(),
            (WEB / "layout.js").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_cover_only_while_it_keeps_most_of_the_picture(out: dict[str, Any]) -> None:
    """A crop keeping under 80 % of the picture (a 4:3 camera on an upright phone) is contain."""
    assert out["nearly"] == "cover"
    assert out["desktop"] == "contain"
    assert out["phone"] == "contain"
    assert out["portraitInPhone"] == "cover"
    assert out["unknown"] == "contain"
    assert out["visible"] == pytest.approx((366 / 650) / (640 / 480))


def test_grid_tiles_keep_the_pictures_aspect(out: dict[str, Any]) -> None:
    """Tiles are sized at the videos' mean aspect (4:3 when none is known), never stretched."""
    assert out["aspect"] == pytest.approx((4 / 3 + 16 / 9) / 2)
    assert out["noAspect"] == pytest.approx(4 / 3)
    grid = out["grid"]
    assert (grid["cols"], grid["rows"]) == (2, 2)
    assert grid["width"] / grid["height"] == pytest.approx(4 / 3)
    assert grid["width"] * 2 + 8 <= 1256 and grid["height"] * 2 + 8 <= 640


def test_nine_stand_three_by_three_except_on_an_upright_phone(out: dict[str, Any]) -> None:
    """Seven to nine tiles stand 3x3 on a desktop and a phone on its side, in two columns on
    an upright phone, where that makes each tile about half as wide again."""
    assert (out["nineDesktop"]["cols"], out["nineDesktop"]["rows"]) == (3, 3)
    assert (out["nineOnItsSide"]["cols"], out["nineOnItsSide"]["rows"]) == (3, 3)
    assert (out["ninePhone"]["cols"], out["ninePhone"]["rows"]) == (2, 5)
    assert (out["eightPhone"]["cols"], out["eightPhone"]["rows"]) == (2, 4)
    three_across = (366 - 16) / 3
    assert out["ninePhone"]["width"] >= 1.4 * three_across
    for shape in ("ninePhone", "eightPhone"):
        tile = out[shape]
        assert tile["width"] * 2 + 8 <= 366
        assert tile["height"] * tile["rows"] + 8 * (tile["rows"] - 1) <= 688
