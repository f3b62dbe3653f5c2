// One WebRTC session with the server (DESIGN.md §4–5): the mic track and the
// "events" data channel go into the offer, ICE is gathered before the POST
// (the server does not take trickled candidates), and an application ping
// notices a dead connection long before ICE consent expiry (~30 s) would.

import { fetchIceConfig, postOffer } from "./api.js";

const PING_EVERY_MS = 2000;
const LOST_AFTER_MS = 6000;
// Host-only gathering finishes in milliseconds, a TURN allocation in a round
// trip or two; the cap guards against a browser that never reports "complete".
const GATHER_CAP_MS = 5000;
const OPEN_TIMEOUT_MS = 15000; // matches the server's connect deadline
// Stop pressed mid-start: how long we still wait for the channel, only to
// tell the server to free the session (see hangUpAfterStart).
const HANG_UP_WAIT_MS = 3000;

// Events: "message" (detail: a server event), "track" (detail: MediaStream),
// "lost" (detail: why), "ended" (detail: the server's reason).
export class VoiceConnection extends EventTarget {
  constructor() {
    super();
    this.pc = null;
    this.channel = null;
    this.sessionId = null;
    this.recordKey = null;
    this.closed = false;
    this.starting = false; // the offer is out and the channel not yet open
    this.stopping = new AbortController(); // aborted by close(): cuts waits short
    this.connected = false; // data channel open; "lost" only means something after this
    this.endedByServer = false; // a session_end arrived: the close that follows is expected
    this.unansweredSince = null; // when the oldest unanswered ping left
    this.pingTimer = null;
  }

  // The access token, if any, is api.js's to send (postOffer).
  async connect(agentId, stream) {
    // The server's STUN/TURN servers (none by default: the server offers its
    // own host candidates, and a public STUN server would be a surprise on a
    // closed network). TURN credentials come fresh for each call.
    const ice = await fetchIceConfig();
    if (this.closed) return;
    const pc = (this.pc = new RTCPeerConnection({
      iceServers: ice.iceServers || [],
      iceTransportPolicy: ice.iceTransportPolicy || "all",
    }));
    const relayErrors = [];
    pc.addEventListener("icecandidateerror", (e) => {
      if (/^turns?:/.test(e.url || "")) relayErrors.push(e);
    });
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    const channel = (this.channel = pc.createDataChannel("events"));

    pc.addEventListener("track", (e) => {
      const remote = e.streams[0] || new MediaStream([e.track]);
      this.emit("track", remote);
    });
    pc.addEventListener("connectionstatechange", () => {
      // "disconnected" can heal by itself; "failed" cannot.
      if (pc.connectionState === "failed") this.lose("The network path to the server failed.");
    });
    channel.addEventListener("message", (e) => this.onMessage(e.data));
    channel.addEventListener("close", () => this.lose("The server closed the connection."));

    await pc.setLocalDescription(await pc.createOffer());
    await gatheringComplete(pc);
    if (this.closed) return;
    if (ice.iceTransportPolicy === "relay" && !/^a=candidate:/m.test(pc.localDescription.sdp)) {
      throw new Error(noRelayMessage(relayErrors));
    }
    this.starting = true;
    try {
      const answer = await postOffer({ sdp: pc.localDescription.sdp, agentId });
      this.sessionId = answer.session_id;
      this.recordKey = answer.record_key || null; // the key to this call's transcript
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      await channelOpen(pc, channel, OPEN_TIMEOUT_MS, this.stopping.signal);
    } finally {
      this.starting = false;
      if (this.closed) this.hangUpAfterStart();
    }
    if (this.closed) return;
    this.connected = true;
    this.startPinging();
  }

  // Stop was pressed after the offer went out. An answer means the server
  // opened a session for it, and no HTTP route ends one: dropping the answer
  // would leave that session (and a MAX_SESSIONS slot) held until the
  // server's connect deadline (CONNECT_TIMEOUT_S, 15 s). So connect() still
  // applied the answer and waited, at most HANG_UP_WAIT_MS after Stop, for
  // the channel: if it opened, end_session frees the session now; if not,
  // closing is all that is left to do.
  hangUpAfterStart() {
    const notify = this.channel && this.channel.readyState === "open";
    this.hangUp({ notify });
  }

  send(message) {
    if (this.channel && this.channel.readyState === "open") {
      this.channel.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  onMessage(raw) {
    let event;
    try {
      event = JSON.parse(raw);
    } catch {
      return; // not ours to show; the server only sends JSON
    }
    this.unansweredSince = null; // any message proves the link is alive
    if (event.type === "pong") return;
    if (event.type === "session_end") {
      this.endedByServer = true;
      this.emit("ended", event.reason);
      return;
    }
    this.emit("message", event);
  }

  // Lost = a ping has gone unanswered for LOST_AFTER_MS. Timed from the
  // ping, not from the last message, so a throttled timer in a background
  // tab (late ticks, so late pings) is not mistaken for a dead server.
  startPinging() {
    this.pingTimer = setInterval(() => {
      const now = performance.now();
      if (this.unansweredSince != null && now - this.unansweredSince > LOST_AFTER_MS) {
        this.lose("No answer from the server for a few seconds.");
        return;
      }
      this.unansweredSince ??= now;
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  lose(why) {
    if (this.closed || this.endedByServer || !this.connected) return;
    this.emit("lost", why);
    this.close({ notify: false });
  }

  // Idempotent. `notify` tells the server first so it frees the session at
  // once instead of waiting for its own ping deadline.
  close({ notify = true } = {}) {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pingTimer);
    this.stopping.abort();
    // Mid-start the peer connection is still needed to reach the server's
    // session: connect() hangs up when its start ends (hangUpAfterStart).
    if (!this.starting) this.hangUp({ notify });
  }

  hangUp({ notify }) {
    if (notify) this.send({ type: "end_session" });
    const pc = this.pc;
    // Give end_session a moment to leave before the transport goes away.
    setTimeout(() => pc && pc.close(), notify ? 150 : 0);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

// Relay-only and no relay address: say why, as far as the browser knows.
function noRelayMessage(errors) {
  if (errors.some((e) => e.errorCode === 401)) {
    return (
      "The relay server (TURN) refused this server's credentials, so no audio path could be set up. " +
      "Ask whoever runs it to check TURN_SECRET (or TURN_USERNAME and TURN_PASSWORD)."
    );
  }
  return "The relay server (TURN) could not be reached, so no audio path could be set up. A firewall may be blocking it.";
}

function gatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, GATHER_CAP_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Rejects after timeoutMs, or HANG_UP_WAIT_MS after `stopping` aborts:
// once Stop is pressed, the channel is only worth a short wait.
function channelOpen(pc, channel, timeoutMs, stopping) {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const finish = (err) => {
      clearTimeout(timer);
      stopping.removeEventListener("abort", shorten);
      channel.removeEventListener("open", onOpen);
      channel.removeEventListener("close", onClose);
      pc.removeEventListener("connectionstatechange", onState);
      err ? reject(err) : resolve();
    };
    const onOpen = () => finish();
    const onClose = () => finish(new Error("The server closed the connection while it was starting."));
    const onState = () =>
      pc.connectionState === "failed" &&
      finish(new Error("The audio connection to the server failed. A firewall may be blocking it."));
    const timeout = () =>
      finish(new Error("The audio connection didn't come up in time. A firewall may be blocking it."));
    let timer = setTimeout(timeout, stopping.aborted ? HANG_UP_WAIT_MS : timeoutMs);
    const shorten = () => {
      clearTimeout(timer);
      timer = setTimeout(timeout, HANG_UP_WAIT_MS);
    };
    stopping.addEventListener("abort", shorten);
    channel.addEventListener("open", onOpen);
    channel.addEventListener("close", onClose);
    pc.addEventListener("connectionstatechange", onState);
  });
}
