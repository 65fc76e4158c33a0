// The screen's m-line in SDP: `a=content:slides` (RFC 4796) on a video section.
//
// A shared screen travels on a video m-line of its own, beside the camera's. Browsers
// neither write nor keep the content attribute, so the mesh adds it to every
// description it sends, on the sections whose mid it knows to be a screen (its own
// screen transceiver, and those a remote description marked). That mark is what lets
// the other browser, the Python client and the server's privilege check
// (tavkit.protocol.sdp: a slides section needs bits 64/128, not the camera's 16/32)
// tell the screen from the camera. Pure functions, no DOM.

/** The mids of the video sections of `sdp` marked `a=content:slides`. */
export function slidesMids(sdp) {
  const mids = new Set();
  for (const section of sections(sdp)) {
    if (section.kind === "video" && section.slides && section.mid !== null) mids.add(section.mid);
  }
  return mids;
}

/** `sdp` with `a=content:slides` added to the video sections whose mid is in `mids`. */
export function markSlides(sdp, mids) {
  if (!sdp || mids.size === 0) return sdp;
  const eol = sdp.includes("\r\n") ? "\r\n" : "\n";
  const out = [];
  for (const section of sections(sdp)) {
    const lines = [...section.lines];
    if (section.kind === "video" && !section.slides && mids.has(section.mid)) {
      const at = lines.findIndex((line) => line.startsWith("a=mid:"));
      lines.splice(at + 1, 0, "a=content:slides");
    }
    out.push(...lines);
  }
  return out.join(eol);
}

/** The session part and each m-section of `sdp`: {kind, mid, slides, lines}. */
function sections(sdp) {
  const result = [{ kind: null, mid: null, slides: false, lines: [] }];
  for (const line of String(sdp || "").split(/\r?\n/)) {
    if (line.startsWith("m=")) {
      result.push({ kind: line.slice(2).split(" ")[0], mid: null, slides: false, lines: [] });
    }
    const section = result[result.length - 1];
    section.lines.push(line);
    if (line.startsWith("a=mid:")) section.mid = line.slice(6).trim();
    else if (line.startsWith("a=content:")) {
      section.slides ||= line.slice(10).trim().split(",").includes("slides");
    }
  }
  return result;
}
