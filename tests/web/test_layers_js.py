"""web/layers.js under node: which simulcast layer a tile of a given size asks for.

The real-browser measure (the received width changing with the tile) is
tests/browser/test_sfu.py.
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
const { layerFor, LayerPlan } = await import(process.argv[1]);
const view = (width, visible = true) => ({ width, height: width * 0.75, visible });
const plan = new LayerPlan(3);
const first = plan.changes([["1", "high"], ["3", "low"], ["5", null]]);
const second = plan.changes([["1", "high"], ["3", "low"], ["5", "paused"]]);
process.stdout.write(JSON.stringify({
  speaker: layerFor(view(1280)),
  desktopGrid: layerFor(view(420)),
  phoneGrid: layerFor(view(180)),
  edge: [layerFor(view(640)), layerFor(view(641)), layerFor(view(320)), layerFor(view(321))],
  offScreen: layerFor(view(640, false)),
  zero: layerFor({ width: 0, height: 0, visible: true }),
  noTile: layerFor(null),
  first, second, subscription: plan.subscription,
}));
"""


@pytest.fixture(scope="module")
def out() -> dict[str, Any]:
    """What layers.js answers for the cases above."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install Debian's nodejs package (make chromium does)")
    run = subprocess.run(
        [node, "--input-type=module", "-e", _RUN, (WEB / "layers.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_a_tile_gets_the_smallest_layer_at_least_as_wide_as_itself(out: dict[str, Any]) -> None:
    """A big tile (the speaker, a 1v1) gets high, a desktop grid's tile medium, a phone's
    grid low; a tile exactly a layer's width keeps that layer."""
    assert (out["speaker"], out["desktopGrid"], out["phoneGrid"]) == ("high", "medium", "low")
    assert out["edge"] == ["medium", "high", "low", "medium"]


def test_a_tile_off_screen_is_paused_and_one_not_drawn_keeps_its_layer(
    out: dict[str, Any],
) -> None:
    """Off the screen or of no size: paused; no tile yet: no choice (null)."""
    assert (out["offScreen"], out["zero"], out["noTile"]) == ("paused", "paused", None)


def test_only_changes_are_sent_and_a_subscription_starts_at_high(out: dict[str, Any]) -> None:
    """A new subscription's streams are at high already, so only other layers are sent;
    a layer already asked is not asked again; no choice sends nothing."""
    assert out["first"] == [{"mid": "3", "layer": "low"}]
    assert out["second"] == [{"mid": "5", "layer": "paused"}]
