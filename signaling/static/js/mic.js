// The microphone: permission, the reasons it can fail (in plain words), a
// silent stand-in for typing-only calls, and the live input level.

export class MicError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // "insecure" | "unsupported" | "denied" | "no_device" | "busy" | "other"
  }
}

// The browser's own processing is what makes a laptop usable without a
// headset: without echo cancellation the agent hears itself and barges in.
const CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: false,
};

export async function openMic() {
  if (!window.isSecureContext) {
    throw new MicError(
      "insecure",
      "Browsers only allow the microphone on secure pages. Open this page through " +
        "https:// or http://localhost, or type your messages instead.",
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicError("unsupported", "This browser can't use a microphone here. You can type instead.");
  }
  try {
    return await navigator.mediaDevices.getUserMedia(CONSTRAINTS);
  } catch (err) {
    throw explain(err);
  }
}

function explain(err) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
    case "PermissionDeniedError":
      return new MicError(
        "denied",
        "Microphone access is blocked. Allow it for this site (the icon at the left of the " +
          "address bar) and try again — or continue by typing.",
      );
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return new MicError(
        "no_device",
        "No microphone was found. Plug one in and try again — or continue by typing.",
      );
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return new MicError(
        "busy",
        "The microphone is in use by another app or couldn't start. Close that app and try " +
          "again — or continue by typing.",
      );
    default:
      return new MicError("other", `The microphone couldn't start (${(err && err.message) || err}).`);
  }
}

// A typing-only call still sends an audio track: the server's contract wants
// one, and silence is what a muted mic would send anyway.
export function silentStream(audioContext) {
  const destination = audioContext.createMediaStreamDestination();
  const gain = audioContext.createGain();
  gain.gain.value = 0;
  const source = audioContext.createConstantSource();
  source.connect(gain).connect(destination);
  source.start();
  return destination.stream;
}

// Reads the input level from an AnalyserNode once per animation frame and
// hands 0..1 to `onLevel`. RMS in dBFS mapped from -60..0 dB reads like a
// VU meter: speech sits in the middle, silence at the bottom.
export class LevelMeter {
  constructor(audioContext, stream, onLevel) {
    this.analyser = audioContext.createAnalyser();
    this.analyser.fftSize = 1024;
    this.source = audioContext.createMediaStreamSource(stream);
    this.source.connect(this.analyser);
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.onLevel = onLevel;
    this.running = true;
    this.tick = this.tick.bind(this);
    requestAnimationFrame(this.tick);
  }

  tick() {
    if (!this.running) return;
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const x of this.buffer) sum += x * x;
    const rms = Math.sqrt(sum / this.buffer.length);
    const db = 20 * Math.log10(rms + 1e-9);
    this.onLevel(Math.min(1, Math.max(0, (db + 60) / 60)));
    requestAnimationFrame(this.tick);
  }

  stop() {
    this.running = false;
    this.source.disconnect();
    this.onLevel(0);
  }
}
