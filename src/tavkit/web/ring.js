// The ring of an incoming call and the ringback tone of an outgoing one.
//
// The default sounds are synthesised with WebAudio, so the component ships no audio
// file and fetches nothing; a page may give its own ring as a URL (TUICallKit's
// setCallingBell) or silence both (its enableMuteMode).
//
// Browsers play sound only after the person has interacted with the page (autoplay
// rules): an AudioContext made before that starts "suspended" and an <audio>'s play()
// rejects. Neither is an error here: the ringer stays silent and starts sounding at the
// first tap or key press while the call still rings. Nothing in this module throws.

const CYCLE_S = { incoming: 2.6, outgoing: 4 }; // one ring pattern, then it repeats
const VOLUME = 0.18;
// E5 G#5 B5 E6 twice: a short bright arpeggio, like a phone's, then a pause.
const INCOMING_NOTES = [659.25, 830.61, 987.77, 1318.51, 659.25, 830.61, 987.77, 1318.51];
const NOTE_S = 0.11;
const GESTURES = ["pointerdown", "keydown", "touchstart"];

/** Plays one ring at a time: "incoming", "outgoing" or nothing. */
export class Ringer {
  constructor() {
    this.kind = null; // what should be sounding now
    this.bell = ""; // the page's URL for the incoming ring; "" for the default
    this.muted = false;
    this.context = null;
    this.output = null; // the GainNode of the ring now playing (WebAudio)
    this.audio = null; // the <audio> of the page's bell
    this.timer = null;
    // A tap on the call screen's own buttons answers the call: no ring for that instant.
    this.onGesture = (event) => {
      if (!event.composedPath?.().some((el) => el.dataset?.call)) this.#sound();
    };
  }

  /** Whether the ring is audible now (false while the browser holds sound back). */
  get audible() {
    if (!this.kind) return false;
    if (this.audio && this.kind === "incoming") return !this.audio.paused;
    return this.context?.state === "running" && this.output !== null;
  }

  /** The page's ring for incoming calls (a URL), or "" / null for the default. */
  setBell(url) {
    this.bell = typeof url === "string" ? url : "";
    this.audio?.pause();
    this.audio = null;
    if (this.kind) this.#restart();
  }

  /** Silence (true) or allow (false) every ring. */
  setMuted(muted) {
    this.muted = Boolean(muted);
    this.#restart();
  }

  /** Start ringing `kind` ("incoming" or "outgoing"), replacing any ring playing. */
  start(kind) {
    if (this.kind === kind) return;
    this.stop();
    this.kind = kind;
    this.#sound();
  }

  /** Stop ringing. */
  stop() {
    this.kind = null;
    this.#silence();
  }

  #restart() {
    this.#silence();
    this.#sound();
  }

  #silence() {
    clearTimeout(this.timer);
    this.timer = null;
    for (const name of GESTURES) globalThis.removeEventListener?.(name, this.onGesture, true);
    this.audio?.pause();
    if (this.output) {
      try {
        this.output.disconnect();
      } catch {
        // already disconnected
      }
      this.output = null;
    }
  }

  #sound() {
    if (!this.kind || this.muted || this.audible) return;
    this.#silence();
    // Until the browser lets us play, the next gesture tries again.
    for (const name of GESTURES) globalThis.addEventListener?.(name, this.onGesture, true);
    if (this.kind === "incoming" && this.bell) this.#playBell();
    else this.#synthesise();
  }

  #playBell() {
    if (!this.audio) {
      this.audio = new Audio(this.bell);
      this.audio.loop = true;
    }
    const kind = this.kind;
    this.audio.play().then(
      () => {
        if (this.kind !== kind || this.muted) this.audio?.pause();
        else this.#played();
      },
      () => {}, // not allowed yet, or the URL does not play: the next gesture retries
    );
  }

  #synthesise() {
    const Context = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!Context) return;
    try {
      this.context ||= new Context();
    } catch {
      return;
    }
    const context = this.context;
    const kind = this.kind;
    const begin = () => {
      if (this.kind !== kind || this.muted || this.output || context.state !== "running") return;
      this.output = context.createGain();
      this.output.gain.value = VOLUME;
      this.output.connect(context.destination);
      this.#played();
      this.#cycle(context, this.output, kind);
    };
    if (context.state === "running") begin();
    else context.resume().then(begin, () => {});
  }

  /** Schedule one pattern on `output` and the next one just before it ends. */
  #cycle(context, output, kind) {
    if (this.output !== output) return;
    const at = context.currentTime + 0.05;
    if (kind === "incoming") {
      INCOMING_NOTES.forEach((freq, i) => tone(context, output, [freq], at + i * NOTE_S, NOTE_S * 1.6));
    } else {
      // A ringback: 450 Hz, one second on (China's and most of Europe's tone).
      tone(context, output, [450], at, 1.0, 0.05);
    }
    this.timer = setTimeout(() => this.#cycle(context, output, kind), CYCLE_S[kind] * 1000);
  }

  #played() {
    for (const name of GESTURES) globalThis.removeEventListener?.(name, this.onGesture, true);
  }
}

/** One note of `freqs` (sines) from `at` for `length` s, with a soft attack and decay. */
function tone(context, output, freqs, at, length, attack = 0.008) {
  const envelope = context.createGain();
  envelope.gain.setValueAtTime(0, at);
  envelope.gain.linearRampToValueAtTime(1, at + attack);
  envelope.gain.setValueAtTime(1, at + Math.max(attack, length - 0.25 * length));
  envelope.gain.exponentialRampToValueAtTime(0.001, at + length);
  envelope.connect(output);
  for (const freq of freqs) {
    const osc = context.createOscillator();
    osc.type = "sine";
    osc.frequency.value = freq;
    osc.connect(envelope);
    osc.start(at);
    osc.stop(at + length + 0.02);
  }
}
