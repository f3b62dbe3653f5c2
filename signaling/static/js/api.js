// HTTP calls to the server (DESIGN.md §3). Errors come back as
// {"error": {"code", "message"}}; the message is written for people, so we
// show it as is.

export class ApiError extends Error {
  constructor(message, { code = "http_error", status = 0 } = {}) {
    super(message);
    this.code = code;
    this.status = status;
  }

  // 503 (busy) and network hiccups are worth another try; a 4xx is not.
  get retryable() {
    return this.status === 0 || this.status === 503 || this.status === 429;
  }
}

async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, cache: "no-store" });
  } catch {
    throw new ApiError("Couldn't reach the server. Is it running?", { code: "network" });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy's HTML error page, say: fall through to the generic message.
  }
  if (!response.ok) {
    const err = body && body.error;
    throw new ApiError(
      (err && err.message) || `The server answered ${response.status}.`,
      { code: (err && err.code) || "http_error", status: response.status },
    );
  }
  return body;
}

export function fetchAgents() {
  return call("/api/agents");
}

// The STUN/TURN servers for this call ({iceServers, iceTransportPolicy}):
// TURN credentials are minted per call, so this is fetched for each one.
// The token only proves the right to ask; the offer is what spends it.
export async function fetchIceConfig() {
  const headers = accessToken ? { Authorization: `Bearer ${accessToken}` } : {};
  try {
    return await call("/api/ice-servers", { headers });
  } catch (err) {
    // A dead link is as dead here as at the offer: no retry will help.
    if (accessToken && DEAD_TOKEN_CODES.has(err.code)) linkUsedUp = true;
    throw err;
  }
}

// An access token from the link (/?token=...), when the server asks for one
// (AUTH_SECRET). Taken out of the address bar at once so it is not
// bookmarked, shared or shown on screen. It opens one session: the server
// spends it when it accepts an offer, and refuses it from then on.
const accessToken = takeTokenFromUrl();
let linkUsedUp = false;

function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token !== null) {
    url.searchParams.delete("token");
    history.replaceState(history.state, "", url);
  }
  return token || null;
}

// The server's verdicts after which this token can never open a session.
// Any other refusal (busy, rate limit, network) leaves it unspent: the
// server only spends a token on an offer it accepts.
const DEAD_TOKEN_CODES = new Set(["token_used", "token_expired", "token_invalid"]);

// True once the page's one-use link can no longer start a call: retrying
// would only resend a dead token, so the page asks for a new link instead.
export function accessLinkUsedUp() {
  return linkUsedUp;
}

export async function postOffer({ sdp, agentId }) {
  const body = { sdp, type: "offer", agent_id: agentId };
  if (accessToken) body.token = accessToken;
  try {
    const answer = await call("/api/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (accessToken) linkUsedUp = true;
    return answer;
  } catch (err) {
    if (accessToken && DEAD_TOKEN_CODES.has(err.code)) linkUsedUp = true;
    throw err;
  }
}
