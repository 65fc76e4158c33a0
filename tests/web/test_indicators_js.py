"""web/speaking.js, quality.js, layout.js and demo/names.js under node: the indicators' rules.

The real-browser checks are tests/browser/test_indicators.py (a speaking member's tile
lights, the bars turn when a link is throttled) and test_grid.py (four stand 2×2).
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
const [speaking, quality, layout, names] = await Promise.all(
  process.argv.slice(1, 5).map((url) => import(url)));
// A level that dips between words: on at once, off only after 700 ms under OFF.
const h = new speaking.Hysteresis();
const lit = [[0.01, 0], [0.05, 250], [0.03, 500], [0.01, 750], [0.01, 1000], [0.1, 1250],
             [0.0, 1500], [0.0, 2000], [0.0, 2250]].map(([level, at]) => h.update(level, at));
const links = new quality.LinkQuality();
links.add({ peerId: "bob", rttMs: 20, packetLoss: 0, bitrateInKbps: 900 });
links.add({ peerId: "carol", rttMs: 40, packetLoss: 0.12, bitrateInKbps: 900 });
const carolPoor = links.of("carol");
links.add({ peerId: "carol", rttMs: 40, packetLoss: 0, bitrateInKbps: 900 });
const carolStill = links.of("carol").level; // one good sample does not clear it
links.add({ peerId: "carol", rttMs: 40, packetLoss: 0, bitrateInKbps: 900 });
const shape = (n, w, h) => { const g = layout.gridShape(n, w, h, 4 / 3); return [g.cols, g.rows]; };
process.stdout.write(JSON.stringify({
  lit,
  rms: speaking.rmsBetween({ energy: 1, duration: 2 }, { energy: 1.25, duration: 3 }),
  good: quality.gradeSample({ rttMs: 30, packetLoss: 0.001, bitrateInKbps: 800 }),
  lossy: quality.gradeSample({ rttMs: 30, packetLoss: 0.05, bitrateInKbps: 800 }),
  slow: quality.gradeSample({ rttMs: 700, packetLoss: 0.05 }),
  thin: quality.gradeSample({ bitrateInKbps: 20 }),
  voiceOnly: quality.gradeSample({ bitrateInKbps: 20 }, { video: false }),
  carolPoor, carolStill, carolLater: links.of("carol").level,
  self: links.best().level,
  shapes: {
    four: [shape(4, 1256, 640), shape(4, 366, 650), shape(4, 780, 340)],
    nine: [shape(9, 1256, 640), shape(9, 366, 650)],
    six: [shape(6, 1256, 640), shape(6, 366, 650)],
    three: [shape(3, 1600, 500), shape(3, 366, 650)],
  },
  demo: [names.demoName("QWxpY2UgV2FuZw.erht"), names.demoName("alice"),
         names.demoName("test.abcd"), names.demoName(names.nameToUserId("小明"))],
}));
"""


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    """What the modules answer for the cases above."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    modules = [WEB / "speaking.js", WEB / "quality.js", WEB / "layout.js", WEB / "demo/names.js"]
    run = subprocess.run(
        [node, "--input-type=module", "-e", _RUN, *(m.as_uri() for m in modules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_speaking_lights_at_once_and_goes_out_only_after_a_pause(out: dict[str, Any]) -> None:
    """On at the first loud level, held through a short dip, off 700 ms after silence began."""
    assert out["lit"] == [False, True, True, True, True, True, True, True, False]
    assert out["rms"] == pytest.approx(0.5)


def test_a_link_is_graded_by_its_worst_figure_with_the_reason(out: dict[str, Any]) -> None:
    """Loss, delay and (with video only) bandwidth grade a sample; the worst says why."""
    assert out["good"] == {"level": "good", "reason": None}
    assert out["lossy"] == {"level": "fair", "reason": {"key": "qualityLoss", "vars": {"pct": 5}}}
    assert out["slow"]["level"] == "poor" and out["slow"]["reason"]["key"] == "qualityDelay"
    assert out["thin"]["level"] == "poor" and out["thin"]["reason"]["key"] == "qualityBandwidth"
    assert out["voiceOnly"]["level"] == "good"


def test_a_bad_sample_shows_at_once_and_clears_after_two_good_ones(out: dict[str, Any]) -> None:
    """The worse of the last two grades; our own tile shows our best link."""
    assert out["carolPoor"]["level"] == "poor"
    assert out["carolStill"] == "poor"
    assert out["carolLater"] == "good"
    assert out["self"] == "good"


def test_grids_stand_two_by_two_for_four_and_three_by_three_for_nine(out: dict[str, Any]) -> None:
    """Four are 2×2 on a desktop, a phone upright and on its side; nine 3×3 on a desktop
    and in two columns on an upright phone, where 3×3 tiles would be a third of its width."""
    shapes = out["shapes"]
    assert shapes["four"] == [[2, 2]] * 3
    assert shapes["nine"] == [[3, 3], [2, 5]]
    assert shapes["six"] == [[3, 2], [2, 3]]
    assert shapes["three"] == [[3, 1], [1, 3]]


def test_the_dashboard_reads_names_only_out_of_demo_shaped_user_ids(out: dict[str, Any]) -> None:
    """A demo userId gives its name back; ordinary userIds, dotted or not, give none."""
    assert out["demo"] == ["Alice Wang", None, None, "小明"]
