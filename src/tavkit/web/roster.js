// Who else is in the call, with no DOM: the remote participants the tiles show.
//
// Members come from the socket (welcome, member-joined, member-left, member-state);
// each one's connection status and stream come from the mesh, except that a member
// the server says lost its own link (member-connection "reconnecting") shows as
// reconnecting whatever the mesh says, until the server says it is back. Names and avatars come
// from the page through the seed's onUserInfoListener: the roster asks for the
// members that arrived within USER_INFO_BATCH_MS of each other in one call, and only
// for those still present when it asks. A name is kept after its member leaves, so
// the chat can still say who wrote a message; a new call forgets them all.
//
// Each member keeps its `publish` bits (privileges.js): the tiles leave out a member
// who publishes nothing (an audience member), who is still a member here. A member
// first met through an early offer has `publish` null (unknown) until its member
// object arrives.

import { publishOf, publishes } from "./privileges.js";

const USER_INFO_BATCH_MS = 50;

/** The remote members of one <tavkit-call> and the names the page gave for them. */
export class Roster {
  #self;
  #askInfo;
  #onChange;

  /**
   * `self()` is the local participant ({userId, userName, avatarUrl}), which user
   * info may name too; `askInfo(userIds, callback)` asks the page for names (the
   * callback takes the seed's [{userId, userName, avatarUrl}]); `onChange()` runs
   * after names or avatars changed.
   */
  constructor({ self, askInfo, onChange }) {
    this.#self = self;
    this.#askInfo = askInfo;
    this.#onChange = onChange;
    this.peers = new Map(); // userId → {userId, userName, avatarUrl, muted, camera, publish, status, stream}
    this.names = new Map(); // userId → userName from onUserInfoListener, kept after they leave
    this.infoQueue = new Set();
    this.infoTimer = null;
  }

  /** A new call: nobody yet, no names. */
  reset() {
    this.clear();
    this.names = new Map();
  }

  /** The call ended: drop the members and any question not asked yet (names stay). */
  clear() {
    clearTimeout(this.infoTimer);
    this.infoTimer = null;
    this.infoQueue.clear();
    this.peers = new Map();
  }

  /** Add a member (from the socket's member object) and ask for its name; whether it is new. */
  add(member) {
    if (!member || typeof member.userId !== "string" || member.userId === this.#self().userId) {
      return false;
    }
    if (this.peers.has(member.userId)) return false;
    this.peers.set(member.userId, {
      userId: member.userId,
      userName: "",
      avatarUrl: "",
      muted: Boolean(member.muted),
      camera: member.camera !== false,
      publish: member.publish === null ? null : publishOf(member),
      status: "connecting",
      away: false, // the server's word: its link dropped, it may resume
      stream: null,
      screen: false, // sharing its screen (member-state), shown once screenStream plays
      screenStream: null,
    });
    this.#queueInfo(member.userId);
    return true;
  }

  /** A known member's publish bits, from a member object; whether they changed. */
  setPublish(member) {
    const peer = this.peers.get(member?.userId);
    if (!peer || member.publish === null) return false;
    const publish = publishOf(member);
    if (peer.publish === publish) return false;
    peer.publish = publish;
    return true;
  }

  /** Whether `userId`'s tile is shown: it publishes something (known and not none). */
  visible(userId) {
    const publish = this.peers.get(userId)?.publish;
    return publish !== null && publish !== undefined && publishes(publish);
  }

  /** Remove a member; whether it was there. */
  remove(userId) {
    return this.peers.delete(userId);
  }

  /** A member's microphone and camera (a member-state frame or member object); whether known. */
  setState({ type, userId, muted, camera, screen }) {
    const peer = this.peers.get(userId);
    if (!peer) return false;
    peer.muted = Boolean(muted);
    peer.camera = camera !== false;
    // Its video is a shared screen (shown whole). Only member-state frames say so;
    // a member object (welcome, member-joined) never does, and changes nothing.
    if (type === "member-state") peer.screen = screen === true;
    return true;
  }

  /** A member's connection as the mesh sees it ({status, stream, screenStream}); whether known. */
  setConnection(userId, remote) {
    const peer = this.peers.get(userId);
    if (!peer || !remote) return false;
    peer.status = remote.status;
    peer.stream = remote.stream;
    peer.screenStream = remote.screenStream || null; // its shared screen's m-line (mesh.js)
    return true;
  }

  /** The server's member-connection: whether `userId` is away; whether that changed. */
  setAway(userId, away) {
    const peer = this.peers.get(userId);
    if (!peer || peer.away === Boolean(away)) return false;
    peer.away = Boolean(away);
    return true;
  }

  /** What a member's tile shows: reconnecting while the server says it is away. */
  status(userId) {
    const peer = this.peers.get(userId);
    if (!peer) return "connecting";
    return peer.away ? "reconnecting" : peer.status;
  }

  /** The name to show for `userId`: from onUserInfoListener, else the userId. */
  displayName(userId) {
    const self = this.#self();
    if (userId === self.userId && self.userName) return self.userName;
    return this.peers.get(userId)?.userName || this.names.get(userId) || userId;
  }

  /** The page's answer to askInfo: one info or a list; unknown users are ignored. */
  applyInfo(infos) {
    const self = this.#self();
    for (const info of Array.isArray(infos) ? infos : [infos]) {
      if (!info || typeof info.userId !== "string") continue;
      const target = info.userId === self.userId ? self : this.peers.get(info.userId);
      if (!target) continue;
      if (typeof info.userName === "string") {
        target.userName = info.userName;
        this.names.set(info.userId, info.userName);
      }
      if (typeof info.avatarUrl === "string") target.avatarUrl = info.avatarUrl;
    }
    this.#onChange();
  }

  #queueInfo(userId) {
    this.infoQueue.add(userId);
    if (this.infoTimer) return;
    this.infoTimer = setTimeout(() => {
      this.infoTimer = null;
      const userIds = [...this.infoQueue].filter((id) => this.peers.has(id));
      this.infoQueue.clear();
      if (userIds.length === 0) return;
      this.#askInfo(userIds, (infos) => this.applyInfo(infos));
    }, USER_INFO_BATCH_MS);
  }
}
