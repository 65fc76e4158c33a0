"""What a tile says about its member: speaking, muted, and how good the connection is.

Two tabs in a call. Chromium's fake microphone beeps, so a member "speaks" from the
start; the other tab's tile of that member lights from the audio levels alone
(speaking.js), goes dark when the audio stops without any state frame, and shows
the mic-off badge once the member mutes. The connection bars (quality.js) grade the
loopback link good, turn when the sender's video is throttled to a trickle, and
recover when the throttle is lifted. On a phone the chat is a bottom sheet that
leaves the call in view and closes when dragged down. Screenshots go to
test-artifacts/ for review.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .pages import POLL, CallPage, Server

pytestmark = pytest.mark.browser

OpenCall = Callable[..., CallPage]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}

# The tile of userId on this page: whether it is lit, muted, and its quality badge.
_TILE = """
(id) => {
  const tile = document.getElementById('call').shadowRoot
    .querySelector(`.tv-tile[data-user-id="${CSS.escape(id)}"]`);
  if (!tile) return null;
  const badge = tile.querySelector('.tv-quality');
  const voice = tile.querySelector('.tv-voice');
  return {
    speaking: 'speaking' in tile.dataset,
    muted: 'muted' in tile.dataset,
    ring: getComputedStyle(tile, '::after').borderTopColor,
    voice: getComputedStyle(voice).display,
    level: badge.hidden ? '' : badge.dataset.level,
    label: badge.getAttribute('aria-label'),
  };
}
"""

# Hold our video sender to `kbps` (null: back to the mesh's budget of 1.2 Mbps).
_THROTTLE = """
async (el, kbps) => {
  for (const pc of el.peerConnections().values()) {
    for (const sender of pc.getSenders()) {
      if (sender.track?.kind !== 'video') continue;
      const params = sender.getParameters();
      params.encodings[0].maxBitrate = kbps ? kbps * 1000 : 1_200_000;
      params.encodings[0].scaleResolutionDownBy = kbps ? 4 : 1;
      await sender.setParameters(params);
    }
  }
}
"""


def wait_tile(page: CallPage, user_id: str, condition: str, timeout: float = 20_000) -> None:
    """Wait until ``condition`` (JS over ``t``, the tile's state) holds for ``user_id``'s tile."""
    page.page.wait_for_function(
        f"(id) => {{ const t = ({_TILE})(id); return !!t && ({condition}); }}",
        arg=user_id,
        timeout=timeout,
        polling=POLL,
    )


def tile(page: CallPage, user_id: str) -> dict[str, object]:
    """The state of ``user_id``'s tile on ``page``."""
    state = page.page.evaluate(_TILE, user_id)
    assert state is not None, f"no tile of {user_id}"
    return dict(state)


def test_speaking_member_lights_its_tile_and_a_muted_one_shows_the_badge(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """The fake microphone's beeps light alice's tile on bob's page; silence puts it out."""
    alice, bob = open_call("alice"), open_call("bob")
    assert alice.join(call_server, room) is True
    assert bob.join(call_server, room) is True
    bob.wait_connected("alice")
    bob.wait_audio_rising("alice")
    wait_tile(bob, "alice", "t.speaking")
    lit = tile(bob, "alice")
    assert lit["ring"] == "rgb(138, 180, 248)" and lit["voice"] == "grid", lit
    # Our own beeps light our own tile too (the microphone's level).
    wait_tile(alice, "alice", "t.speaking")
    bob.page.set_viewport_size(PHONE)
    bob.screenshot("indicators-speaking-phone.png")

    # The audio stops with no state frame: only the level can tell bob's page.
    alice.call("(el) => el.localStream.getAudioTracks().forEach((t) => (t.enabled = false))")
    wait_tile(bob, "alice", "!t.speaking")
    assert tile(bob, "alice")["muted"] is False

    alice.call("(el) => el.mute(true)")
    wait_tile(bob, "alice", "t.muted && !t.speaking && t.voice === 'grid'")
    bob.page.set_viewport_size(DESKTOP)
    bob.screenshot("indicators-muted-desktop.png")

    # The chat on a phone: a sheet over the lower part; the top of the call stays in view.
    alice.call("(el) => el.sendMessage('can you hear me?')")
    bob.page.set_viewport_size(PHONE)
    bob.page.locator('tavkit-call button[data-action="chat"]').click()
    sheet = bob.page.locator("tavkit-call .tv-chat")
    bob.page.locator("tavkit-call .tv-msg").wait_for()
    box = sheet.bounding_box()
    assert box is not None and box["width"] == PHONE["width"], box
    assert 0.3 * PHONE["height"] <= box["y"] <= 0.5 * PHONE["height"], box
    bob.screenshot("indicators-chat-sheet-phone.png")
    # Dragged down by its head, it closes.
    head = bob.page.locator("tavkit-call .tv-chat-title").bounding_box()
    assert head is not None
    bob.page.mouse.move(head["x"] + 5, head["y"] + 5)
    bob.page.mouse.down()
    bob.page.mouse.move(head["x"] + 5, head["y"] + 120, steps=4)
    bob.page.mouse.move(head["x"] + 5, head["y"] + 260, steps=4)
    bob.page.mouse.up()
    bob.page.wait_for_function(
        "() => document.getElementById('call').shadowRoot.querySelector('.tv-chat').hidden",
        polling=POLL,
        timeout=5_000,
    )
    # On a desktop it is the side panel, beside the call.
    bob.page.set_viewport_size(DESKTOP)
    bob.page.locator('tavkit-call button[data-action="chat"]').click()
    box = sheet.bounding_box()
    assert box is not None and box["y"] == 0 and box["height"] == DESKTOP["height"], box
    bob.screenshot("indicators-chat-panel-desktop.png")


def test_quality_bars_grade_the_link_turn_when_throttled_and_recover(
    open_call: OpenCall, call_server: Server, room: int
) -> None:
    """Loopback is graded good; alice's video held to 10 kbps turns bob's bars; lifted, good."""
    alice, bob = open_call("alice"), open_call("bob")
    assert alice.join(call_server, room) is True
    assert bob.join(call_server, room) is True
    bob.wait_connected("alice")
    wait_tile(bob, "alice", "t.level === 'good'")
    assert tile(bob, "alice")["label"] == "Good connection"
    # Our own tile shows our best link.
    wait_tile(bob, "bob", "t.level === 'good'")

    alice.call("(el) => el.mute(true)")  # so the audio does not carry the bitrate
    alice.call(_THROTTLE, 10)
    wait_tile(bob, "alice", "t.level === 'poor' || t.level === 'fair'", timeout=30_000)
    state = tile(bob, "alice")
    assert "low bandwidth" in str(state["label"]), state
    bob.page.set_viewport_size(PHONE)
    bob.call("(el) => el.setAttribute('lang', 'zh')")
    wait_tile(bob, "alice", "t.label.includes('带宽不足')")
    bob.screenshot("indicators-poor-phone-zh.png")

    alice.call(_THROTTLE, None)
    wait_tile(bob, "alice", "t.level === 'good'", timeout=30_000)
    assert tile(bob, "alice")["label"] == "网络良好"
