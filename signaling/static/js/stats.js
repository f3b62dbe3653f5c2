// Browser-side numbers from RTCPeerConnection.getStats(): what the server's
// timings can't see — the network round trip, the time our jitter buffer
// holds the agent's audio, and the playout path to the speaker.

const POLL_MS = 1000;
const HISTORY = 5; // samples behind `steady`: one hiccup shouldn't redraw the waterfall

export class StatsPoller {
  constructor(pc, onStats) {
    this.pc = pc;
    this.onStats = onStats;
    this.latest = null;
    this.history = [];
    this.prev = null; // last cumulative counters, for per-interval averages
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.poll();
  }

  async poll() {
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return; // the connection closed under us; stop() is on its way
    }
    const stats = readStats(report, this.prev);
    this.prev = stats.counters;
    this.latest = stats;
    this.history = [...this.history.slice(1 - HISTORY), stats];
    this.onStats(stats);
  }

  // Medians of the last few samples: what a typical moment sounded like.
  get steady() {
    if (!this.history.length) return null;
    const median = (key) => {
      const xs = this.history.map((s) => s[key]).filter((x) => x != null).sort((a, b) => a - b);
      return xs.length ? xs[Math.floor(xs.length / 2)] : null;
    };
    return { rttMs: median("rttMs"), jitterBufferMs: median("jitterBufferMs"), playoutMs: median("playoutMs") };
  }

  stop() {
    clearInterval(this.timer);
  }
}

// A running total of seconds × samples over a sample count: the average over
// the last interval says how long audio waits *now*; the lifetime average is
// the fallback for the first sample.
function intervalAverageMs(total, count, prevTotal, prevCount) {
  if (!count) return null;
  const dCount = prevCount == null ? 0 : count - prevCount;
  return dCount > 0 ? ((total - prevTotal) / dCount) * 1000 : (total / count) * 1000;
}

function readStats(report, prev) {
  let selectedPairId = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) selectedPairId = s.selectedCandidatePairId;
  });
  let pairRtt = null;
  let pair = null;
  let remoteRtt = null;
  let inbound = null;
  let playout = null;
  report.forEach((s) => {
    if (s.type === "candidate-pair" && (s.id === selectedPairId || (!selectedPairId && s.nominated))) {
      if (typeof s.currentRoundTripTime === "number") pairRtt = s.currentRoundTripTime;
      pair = s;
    } else if (s.type === "remote-inbound-rtp" && s.kind === "audio") {
      if (typeof s.roundTripTime === "number") remoteRtt = s.roundTripTime;
    } else if (s.type === "inbound-rtp" && s.kind === "audio") {
      inbound = s;
    } else if (s.type === "media-playout") {
      playout = s;
    }
  });

  const rtt = pairRtt ?? remoteRtt;
  // The candidates of the pair in use: "relay" means through a TURN server.
  const candidateType = (id) => (id && report.get(id) ? report.get(id).candidateType : null);
  const counters = {
    jbDelay: inbound ? inbound.jitterBufferDelay ?? 0 : 0,
    jbCount: inbound ? inbound.jitterBufferEmittedCount ?? 0 : 0,
    playDelay: playout ? playout.totalPlayoutDelay ?? 0 : 0,
    playCount: playout ? playout.totalSamplesCount ?? 0 : 0,
  };
  const p = prev || {};
  return {
    rttMs: rtt == null ? null : rtt * 1000,
    jitterMs: inbound && inbound.jitter != null ? inbound.jitter * 1000 : null,
    jitterBufferMs: intervalAverageMs(counters.jbDelay, counters.jbCount, p.jbDelay, p.jbCount),
    playoutMs: intervalAverageMs(counters.playDelay, counters.playCount, p.playDelay, p.playCount),
    packetsReceived: inbound ? inbound.packetsReceived ?? 0 : 0,
    packetsLost: inbound ? inbound.packetsLost ?? 0 : 0,
    totalAudioEnergy: inbound ? inbound.totalAudioEnergy ?? 0 : 0,
    audioLevel: inbound ? inbound.audioLevel ?? 0 : 0,
    localCandidateType: pair ? candidateType(pair.localCandidateId) : null,
    remoteCandidateType: pair ? candidateType(pair.remoteCandidateId) : null,
    counters,
  };
}
