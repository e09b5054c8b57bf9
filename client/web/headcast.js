// headcast browser client: the <headcast-avatar> web component and the connection
// underneath it. Plain ES module, no dependencies, no build step.
//
//   <script type="module" src="https://avatar.example/headcast.js"></script>
//   <headcast-avatar server="https://avatar.example" avatar="default" token="…"></headcast-avatar>
//
// API: connect(), speak(blob), pushAudio(float32Samples, sampleRate), interrupt(),
// setEmotion(name), close(). Events: connected, speechstart, speechend, interrupted,
// error (detail.message), statechange (detail.state), stats (detail: see readStats).
//
// Protocol (see docs/client.md): POST /v1/sessions -> WHEP offer/answer on
// /v1/sessions/{id}/whep (ICE gathered before the offer is sent; no trickle) ->
// WebSocket /v1/sessions/{id}/ws for PCM in and events out.

const SAMPLE_RATE = 16000; // the server's speech rate; pushAudio resamples to it
const MIN_RATE = 8000; // pushAudio's accepted input rates (Hz)
const MAX_RATE = 192000;
const MAX_PCM_BYTES = 512 * 1024; // per WebSocket message (server limit is 1 MiB)
const ICE_GATHER_TIMEOUT_MS = 3000;
const CONNECT_TIMEOUT_MS = 15000;
const READY_TIMEOUT_MS = 10000;
const STATS_EVERY_MS = 1000;
const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often heals by itself
const STALL_MS = 4000; // the server always sends frames (idle ones too): none = lost
const RECONNECT_BASE_MS = 1000;
const RECONNECT_MAX_MS = 10000;
const RECONNECT_ATTEMPTS = 8;

const CANCELLED = 'Connection cancelled: closed while connecting';
export const STATES = ['disconnected', 'connecting', 'waiting', 'idle', 'speaking', 'reconnecting', 'failed'];
const BUSY_RETRIES = 12; // a full server (503): tries, each after its Retry-After hint
const BUSY_DEFAULT_WAIT_S = 5;

/** An error whose message is written for the person looking at the page. */
export class HeadcastError extends Error {
  constructor(message, status = 0, retryAfterS = null) {
    super(message);
    this.name = 'HeadcastError';
    this.status = status;
    this.retryAfterS = retryAfterS; // a 503's Retry-After (seconds), when it gave one
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new HeadcastError(`${what} took longer than ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function reasonOf(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    const detail = body.detail ?? body.message ?? text;
    return typeof detail === 'string' ? detail : JSON.stringify(detail);
  } catch {
    return text.slice(0, 300) || response.statusText;
  }
}

function describeHttp(status, reason) {
  if (status === 401) return `Not authorised: ${reason}`;
  if (status === 403) return `Forbidden: ${reason}`;
  if (status === 404) return `Not found: ${reason}`;
  if (status === 503) return `Server busy: ${reason}`;
  if (status === 501) return `Not available on this server: ${reason}`;
  if (status >= 400 && status < 500) return `Refused (${status}): ${reason}`;
  return `Server error ${status}: ${reason}`;
}

/**
 * Float32 samples at `from` Hz -> Float32Array at `to` Hz, pushed in any chunk sizes:
 * linear interpolation when upsampling, a box average when downsampling. The read
 * position and the samples it still needs carry over from one push to the next, so
 * chunked input gives the same samples as one whole array (none lost at the seams).
 */
export class Resampler {
  constructor(from, to) {
    this.from = from;
    this.to = to;
    this.ratio = from / to;
    this.half = Math.max(0, Math.floor(this.ratio / 2)); // averaging half-width when downsampling
    this.buf = new Float32Array(0);
    this.made = 0; // output samples so far: output i reads input position i * ratio
    this.dropped = 0; // input samples discarded from the front of buf
  }

  push(samples) {
    if (this.from === this.to) return Float32Array.from(samples);
    const buf = new Float32Array(this.buf.length + samples.length);
    buf.set(this.buf);
    buf.set(samples, this.buf.length);
    const right = this.half === 0 ? 1 : this.half; // samples needed right of the position
    const out = [];
    for (;;) {
      const x = this.made * this.ratio; // the same arithmetic however the input is split
      const i0 = Math.floor(x) - this.dropped;
      if (i0 + right >= buf.length) break;
      if (this.half === 0) {
        out.push(buf[i0] + (buf[i0 + 1] - buf[i0]) * (x - Math.floor(x)));
      } else {
        let sum = 0;
        const k0 = Math.max(0, i0 - this.half);
        for (let k = k0; k <= i0 + this.half; k++) sum += buf[k];
        out.push(sum / (i0 + this.half - k0 + 1));
      }
      this.made += 1;
    }
    const keep = Math.max(0, Math.min(Math.floor(this.made * this.ratio) - this.dropped - this.half, buf.length));
    this.buf = buf.slice(keep);
    this.dropped += keep;
    return Float32Array.from(out);
  }
}

/**
 * One live avatar session: HTTP, WebRTC (WHEP) and the WebSocket. No DOM besides the
 * <video> it is given. Emits events on `target` (an EventTarget).
 */
export class HeadcastConnection {
  constructor({ server, token = '', session = '', avatar = 'default', emotion = 'neutral', size = 0, fps = 0, input = 'websocket', video, target }) {
    this.server = (server || location.origin).replace(/\/+$/, '');
    this.token = token;
    this.avatar = avatar;
    this.emotion = emotion;
    this.size = size;
    this.fps = fps;
    this.input = input;
    this.video = video;
    this.target = target;
    this.session = null; // the server's session description
    this.joinId = session; // a session the page's back end opened: watch it, never close it
    this.pc = null;
    this.ws = null;
    this.whepResource = null;
    this.microphone = null;
    this.ready = null; // the WebSocket's ready event
    this.closed = false;
    this.serverDropped = 0;
    this.serverClosed = null; // the reason the server gave when it closed the session
    this.pushStartedAt = null; // performance.now() of the first audio of an utterance
    this.pushToMouthMs = null;
    this._statsTimer = null;
    this._lastFrames = -1;
    this._lastFramesAt = 0;
    this._resampler = null; // pushAudio's, for the rate it was last given
    this._abortConnect = null; // rejects the wait for the WebRTC connection
  }

  emit(type, detail = {}) {
    this.target.dispatchEvent(new CustomEvent(type, { detail }));
  }

  url(path) {
    return this.server + path;
  }

  async http(method, path, { body, type, json = true } = {}) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (type) headers['Content-Type'] = type;
    let response;
    try {
      response = await fetch(this.url(path), { method, headers, body, mode: 'cors' });
    } catch (err) {
      throw new HeadcastError(
        `Cannot reach ${this.server} (network down, server stopped, or this page's origin ` +
          `${location.origin} is not in the server's cors_origins)`,
      );
    }
    if (!response.ok) {
      const retryAfter = Number(response.headers.get('Retry-After'));
      throw new HeadcastError(
        describeHttp(response.status, await reasonOf(response)),
        response.status,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null,
      );
    }
    if (!json) return response;
    return response.status === 204 ? null : response.json();
  }

  async open() {
    this.config = await this.http('GET', '/v1/client/config');
    await this.stillWanted();
    if (this.joinId) {
      this.session = await this.http('GET', `/v1/sessions/${encodeURIComponent(this.joinId)}`);
    } else {
      const params = { avatar: this.avatar, emotion: this.emotion, input: this.input };
      if (this.size) params.size = this.size;
      if (this.fps) params.fps = this.fps;
      this.session = await this.http('POST', '/v1/sessions', {
        body: JSON.stringify(params),
        type: 'application/json',
      });
    }
    await this.stillWanted();
    await withTimeout(this.negotiate(), CONNECT_TIMEOUT_MS, 'Connecting the video');
    await this.stillWanted();
    await this.openSocket();
    await this.stillWanted();
    this._lastFramesAt = performance.now();
    this._statsTimer = setInterval(() => this.readStats().catch(() => {}), STATS_EVERY_MS);
  }

  async negotiate() {
    const pc = new RTCPeerConnection({ iceServers: this.config.ice_servers || [] });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    if (this.input === 'mirror') {
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      } catch (err) {
        throw new HeadcastError(`Microphone unavailable: ${err.message || err.name}`);
      }
      this.microphone = stream;
      await this.stillWanted();
      pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendrecv', streams: [stream] });
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    const remote = new MediaStream();
    pc.ontrack = (ev) => {
      remote.addTrack(ev.track);
      if (this.video.srcObject !== remote) this.video.srcObject = remote;
      // played once every track is in (startPlayback): a stream played while it held
      // only video is let through by the autoplay policy and judged again, by pausing
      // it, when its sound arrives
    };
    const connected = new Promise((resolve, reject) => {
      // close() fires no connectionstatechange: it rejects through this instead
      this._abortConnect = () => reject(new HeadcastError(CANCELLED));
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') resolve();
        if (pc.connectionState === 'failed') reject(new HeadcastError('WebRTC connection failed (no ICE route to the server)'));
        if (pc.connectionState === 'closed') reject(new HeadcastError(CANCELLED));
      });
    });
    connected.catch(() => {}); // it may settle before it is awaited below; handled there
    await pc.setLocalDescription(await pc.createOffer());
    await this.iceGathered(pc);
    await this.stillWanted(); // closed while ICE gathered: no offer for a session now gone
    const response = await this.http('POST', `/v1/sessions/${this.session.id}/whep`, {
      body: pc.localDescription.sdp,
      type: 'application/sdp',
      json: false,
    });
    await this.stillWanted();
    const location_ = response.headers.get('Location');
    this.whepResource = location_ ? new URL(location_, this.server + '/').pathname : null;
    await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
    await connected;
    this._abortConnect = null;
    await this.startPlayback();
  }

  /**
   * Play the stream. A page the visitor has not clicked may not play sound: then it
   * plays muted (browsers allow that) and says so with `autoplayblocked`
   * (detail: `muted` true when it muted the sound, `paused` true when even muted
   * playback was refused), so the page or the widget can offer a tap to unmute.
   */
  async startPlayback() {
    if (!this._onPause) {
      // Chromium may pause a playing stream once its sound becomes audible without a
      // click: try again, and fall back to muted, whenever it pauses on its own
      this._onPause = () => !this.closed && this.startPlayback();
      this.video.addEventListener('pause', this._onPause);
    }
    try {
      await this.video.play();
      return;
    } catch (err) {
      if (err.name !== 'NotAllowedError') return;
    }
    const mutedByUs = !this.video.muted;
    this.video.muted = true;
    try {
      await this.video.play();
      this.emit('autoplayblocked', { muted: mutedByUs, paused: false });
    } catch {
      this.emit('autoplayblocked', { muted: mutedByUs, paused: true });
    }
  }

  /** Close the session on the server from a page being unloaded (pagehide): a beacon
   * outlives the page, a normal request does not. */
  closeOnUnload() {
    if (!this.session || this.closed) return;
    if (this.joinId) {
      // not ours to close: leave it (the peer connection's close tells the server)
      if (this.pc) this.pc.close();
      this.closed = true;
      return;
    }
    const token = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    navigator.sendBeacon(this.url(`/v1/sessions/${this.session.id}/close${token}`));
    this.closed = true;
  }

  /** Called after each step of open(): closed meanwhile -> release what the step made. */
  async stillWanted() {
    if (!this.closed) return;
    await this.close();
    throw new HeadcastError(CANCELLED);
  }

  iceGathered(pc) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ICE_GATHER_TIMEOUT_MS); // send what we have
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  openSocket() {
    const base = this.server.replace(/^http/, 'ws');
    const query = this.token ? `?token=${encodeURIComponent(this.token)}` : '';
    const ws = new WebSocket(`${base}/v1/sessions/${this.session.id}/ws${query}`);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    return withTimeout(
      new Promise((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: 'start', format: 'f32le', sample_rate: SAMPLE_RATE, channels: 1 }));
        ws.onerror = () => reject(new HeadcastError('The event socket could not be opened'));
        ws.onclose = (ev) => reject(new HeadcastError(`The event socket closed: ${ev.reason || ev.code}`));
        ws.onmessage = (ev) => {
          const event = JSON.parse(ev.data);
          if (event.type === 'ready') {
            this.ready = event;
            ws.onmessage = (e) => this.onEvent(JSON.parse(e.data));
            ws.onclose = (e) => {
              // a session deleted through the API is final (see onEvent); anything else
              // is a lost connection, worth a reconnect
              if (this.serverClosed === null) this.emit('_lost', { reason: `event socket closed (${e.reason || e.code})` });
            };
            ws.onerror = null;
            resolve(event);
          } else if (event.type === 'error') {
            reject(new HeadcastError(event.message));
          }
        };
      }),
      READY_TIMEOUT_MS,
      'Opening the event socket',
    );
  }

  onEvent(event) {
    switch (event.type) {
      case 'speech_started':
        if (this.pushStartedAt !== null) {
          this.pushToMouthMs = performance.now() - this.pushStartedAt + (this._videoBufferMs || 0);
          this.pushStartedAt = null;
        }
        this.emit('speechstart', event);
        break;
      case 'speech_ended':
        this.emit('speechend', event);
        break;
      case 'interrupted':
        this.pushStartedAt = null;
        this.emit('interrupted', event);
        break;
      case 'dropped':
        this.serverDropped = event.frames;
        break;
      case 'error':
        this.emit('error', { message: event.message });
        break;
      case 'closed':
        // deleted through the API (the site's back end ended it): final. Reaped, failed
        // or closed with the server: the socket's close then reconnects as for a lost one.
        if (event.deleted) {
          this.serverClosed = event.message || 'session closed';
          this.emit('_ended', { reason: this.serverClosed });
        }
        this.emit('serverevent', event);
        break;
      default:
        this.emit('serverevent', event);
    }
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new HeadcastError('Not connected');
    this.ws.send(message);
  }

  markPush() {
    if (this.pushStartedAt === null) this.pushStartedAt = performance.now();
  }

  pushAudio(samples, sampleRate) {
    if (!samples || typeof samples.length !== 'number') {
      throw new HeadcastError('pushAudio needs an array of float samples (e.g. a Float32Array)');
    }
    if (!Number.isFinite(sampleRate) || sampleRate < MIN_RATE || sampleRate > MAX_RATE) {
      throw new HeadcastError(`pushAudio: sampleRate must be ${MIN_RATE}..${MAX_RATE} Hz, got ${sampleRate}`);
    }
    if (!this._resampler || this._resampler.from !== sampleRate) {
      this._resampler = new Resampler(sampleRate, SAMPLE_RATE);
    }
    const pcm = this._resampler.push(Float32Array.from(samples, (v) => (Number.isFinite(v) ? v : 0)));
    if (pcm.length === 0) return;
    this.markPush();
    const step = MAX_PCM_BYTES / 4;
    for (let i = 0; i < pcm.length; i += step) {
      this.send(pcm.slice(i, i + step).buffer);
    }
  }

  async speak(blob) {
    this.markPush();
    try {
      return await this.http('POST', `/v1/sessions/${this.session.id}/audio`, {
        body: blob,
        type: blob.type || 'application/octet-stream',
      });
    } catch (err) {
      this.pushStartedAt = null; // nothing was queued: no push to time
      throw err;
    }
  }

  /** Typed text, spoken by the server's text to speech; resolves once its first sentence is queued. */
  async say(text, voice) {
    this.markPush();
    try {
      const body = JSON.stringify(voice ? { text, voice } : { text });
      return await this.http('POST', `/v1/sessions/${this.session.id}/say`, { body, type: 'application/json' });
    } catch (err) {
      this.pushStartedAt = null;
      throw err;
    }
  }

  interrupt() {
    this.send(JSON.stringify({ type: 'interrupt' }));
  }

  setEmotion(name) {
    const known = this.config && this.config.emotions;
    if (Array.isArray(known) && !known.includes(name)) {
      throw new HeadcastError(`Unknown emotion '${name}'; this server has: ${known.join(', ')}`);
    }
    this.send(JSON.stringify({ type: 'emotion', name }));
    this.emotion = name;
  }

  /** One sample of the receive statistics (getStats) merged with server-side numbers. */
  async readStats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    const out = { fps: 0, rttMs: null, jitterMs: null, audioJitterMs: null, framesDecoded: 0, framesDropped: 0 };
    let videoDelay = null;
    let audioDelay = null;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.fps = s.framesPerSecond ?? 0;
        out.framesDecoded = s.framesDecoded ?? 0;
        out.framesDropped = s.framesDropped ?? 0;
        out.jitterMs = s.jitter != null ? s.jitter * 1000 : null;
        if (s.jitterBufferEmittedCount) videoDelay = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
        out.width = s.frameWidth;
        out.height = s.frameHeight;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.audioJitterMs = s.jitter != null ? s.jitter * 1000 : null;
        if (s.jitterBufferEmittedCount) audioDelay = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000;
      } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        if (s.currentRoundTripTime != null) out.rttMs = s.currentRoundTripTime * 1000;
      }
    });
    this._videoBufferMs = videoDelay;
    const now = performance.now();
    if (out.framesDecoded !== this._lastFrames) {
      this._lastFrames = out.framesDecoded;
      this._lastFramesAt = now;
    } else if (now - this._lastFramesAt > STALL_MS && !this.closed) {
      this.emit('_lost', { reason: `no video for ${STALL_MS / 1000} s` });
    }
    // Both tracks leave the server on one clock, so the receive-side offset is the
    // difference of their jitter-buffer delays (positive: video shown later than audio).
    out.avOffsetMs = videoDelay !== null && audioDelay !== null ? videoDelay - audioDelay : null;
    out.pushToMouthMs = this.pushToMouthMs;
    out.serverDroppedFrames = this.serverDropped;
    out.delayMs = this.ready ? this.ready.delay_ms : null;
    this.emit('stats', out);
    return out;
  }

  /** Release everything; `quiet` skips the server calls (used when the network is gone). */
  async close({ quiet = false } = {}) {
    this.closed = true;
    if (this._abortConnect) this._abortConnect(); // a connect waiting for ICE ends now
    clearInterval(this._statsTimer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close();
    }
    if (this._onPause) this.video.removeEventListener('pause', this._onPause);
    if (this.pc) this.pc.close();
    if (this.microphone) this.microphone.getTracks().forEach((t) => t.stop());
    // close() runs again when an open() step finds itself cancelled: release once
    // (nothing to release of a session deleted through the API)
    const release = !quiet && this.session && !this._released && this.serverClosed === null;
    if (release) this._released = true;
    if (release && this.joinId && this.whepResource) {
      // a joined session stays: only this viewer leaves it
      await this.http('DELETE', this.whepResource, { json: false }).catch(() => {});
    } else if (release && !this.joinId) {
      await this.http('DELETE', `/v1/sessions/${this.session.id}`, { json: false }).catch(() => {});
    }
    this.pc = null;
    this.ws = null;
  }
}

const TEMPLATE = `
<style>
  :host { display: inline-block; position: relative; width: 256px; aspect-ratio: 1; background: #111; color: #eee;
          font: 12px/1.3 system-ui, sans-serif; border-radius: 8px; overflow: hidden; }
  video { width: 100%; height: 100%; object-fit: cover; display: block; }
  .state { position: absolute; left: 6px; top: 6px; padding: 2px 8px; border-radius: 10px; background: #0008; }
  .state[data-state="failed"] { background: #a22c; }
  .state[data-state="speaking"] { background: #2a6c; }
  .error { position: absolute; left: 6px; right: 6px; bottom: 6px; padding: 6px 8px; border-radius: 6px;
           background: #a22e; color: #fff; display: none; }
  :host([data-state="failed"]) .error { display: block; }
  .stats { position: absolute; right: 6px; top: 6px; padding: 4px 6px; border-radius: 6px; background: #000a;
           font: 11px/1.35 ui-monospace, monospace; white-space: pre; display: none; }
  :host([stats]) .stats:not(:empty) { display: block; }
  .unmute { position: absolute; left: 50%; bottom: 12px; transform: translateX(-50%); padding: 8px 14px;
            border: 0; border-radius: 18px; background: #fffe; color: #111; font: 600 13px/1 system-ui, sans-serif;
            cursor: pointer; box-shadow: 0 1px 6px #0006; white-space: nowrap; }
  .unmute[hidden] { display: none; }
</style>
<video playsinline autoplay part="video"></video>
<div class="state" part="state" role="status" aria-live="polite">disconnected</div>
<div class="stats" part="stats"></div>
<div class="error" part="error" role="alert"></div>
<button class="unmute" part="unmute" type="button" hidden>Tap to unmute</button>
`;

const STATE_LABELS = {
  disconnected: 'disconnected',
  connecting: 'connecting…',
  waiting: 'waiting for a free slot…',
  idle: 'live · idle',
  speaking: 'live · speaking',
  reconnecting: 'reconnecting…',
  failed: 'failed',
};

function fmt(value, digits = 0, unit = '') {
  return value === null || value === undefined || Number.isNaN(value) ? '–' : `${value.toFixed(digits)}${unit}`;
}

/** <headcast-avatar server avatar token session emotion size fps input="websocket|mirror" muted stats autoconnect> */
export class HeadcastAvatar extends HTMLElement {
  static get observedAttributes() {
    return ['muted'];
  }

  constructor() {
    super();
    this.attachShadow({ mode: 'open' }).innerHTML = TEMPLATE;
    this.video = this.shadowRoot.querySelector('video');
    this.stateEl = this.shadowRoot.querySelector('.state');
    this.errorEl = this.shadowRoot.querySelector('.error');
    this.statsEl = this.shadowRoot.querySelector('.stats');
    this.unmuteEl = this.shadowRoot.querySelector('.unmute');
    this.unmuteEl.addEventListener('click', () => this.unmute());
    this.connection = null;
    this.state = 'disconnected';
    this.lastError = '';
    this.lastStats = null;
    this._attempts = 0;
    this._busyTries = 0;
    this._retryTimer = null;
    this._lostTimer = null;
    this._wanted = false; // the page asked for a connection and has not closed it
    this._onOnline = () => this._wanted && this.state === 'reconnecting' && this._retryNow();
    // a closed or reloaded tab ends its session now, not after the server's idle timeout
    this._onPageHide = () => this.connection?.closeOnUnload();
    this._onEvent = (ev) => this._handle(ev);
  }

  connectedCallback() {
    window.addEventListener('online', this._onOnline);
    window.addEventListener('pagehide', this._onPageHide);
    this.video.muted = this.hasAttribute('muted');
    if (this.hasAttribute('autoconnect')) this.connect().catch(() => {});
  }

  disconnectedCallback() {
    window.removeEventListener('online', this._onOnline);
    window.removeEventListener('pagehide', this._onPageHide);
    this.close();
  }

  attributeChangedCallback(name) {
    if (name === 'muted') this.video.muted = this.hasAttribute('muted');
  }

  _setState(state, reason = '') {
    this.state = state;
    this.dataset.state = state;
    this.stateEl.dataset.state = state;
    this.stateEl.textContent = STATE_LABELS[state] + (state === 'reconnecting' ? ` (${this._attempts})` : '');
    if (state === 'failed') this.errorEl.textContent = reason;
    if (state === 'disconnected' || state === 'failed') this.statsEl.textContent = '';
    this.dispatchEvent(new CustomEvent('statechange', { detail: { state, reason } }));
  }

  _fail(message) {
    this.lastError = message;
    this._setState('failed', message);
    this.dispatchEvent(new CustomEvent('error', { detail: { message } }));
  }

  _handle(ev) {
    const detail = ev.detail;
    switch (ev.type) {
      case 'speechstart':
        if (this.state === 'idle') this._setState('speaking');
        break;
      case 'speechend':
      case 'interrupted':
        if (this.state === 'speaking') this._setState('idle');
        break;
      case 'stats':
        this.lastStats = detail;
        this._renderStats(detail);
        break;
      case '_lost':
        this._lost(detail.reason);
        return;
      case '_ended':
        this._ended(detail.reason);
        return;
      case 'autoplayblocked':
        this.unmuteEl.textContent = detail.paused ? 'Tap to play' : 'Tap to unmute';
        this.unmuteEl.hidden = false;
        break;
      default:
        break;
    }
    this.dispatchEvent(new CustomEvent(ev.type, { detail }));
  }

  _renderStats(s) {
    this.statsEl.textContent = [
      `fps      ${fmt(s.fps)}`,
      `rtt      ${fmt(s.rttMs, 0, ' ms')}`,
      `jitter   ${fmt(s.jitterMs, 0, ' ms')}`,
      `push→mouth ${fmt(s.pushToMouthMs, 0, ' ms')}`,
      `A/V      ${fmt(s.avOffsetMs, 0, ' ms')}`,
      `dropped  ${s.framesDropped + s.serverDroppedFrames}`,
    ].join('\n');
  }

  _options() {
    return {
      server: this.getAttribute('server') || location.origin,
      token: this.getAttribute('token') || '',
      session: this.getAttribute('session') || '',
      avatar: this.getAttribute('avatar') || 'default',
      emotion: this.getAttribute('emotion') || 'neutral',
      size: Number(this.getAttribute('size') || 0),
      fps: Number(this.getAttribute('fps') || 0),
      input: this.getAttribute('input') || 'websocket',
      video: this.video,
      target: new EventTarget(),
    };
  }

  /**
   * Open a session (or join the one named by the `session` attribute or option) and start
   * playing. Resolves once video flows and events are live.
   */
  async connect({ session } = {}) {
    if (session !== undefined) {
      if (session) this.setAttribute('session', session);
      else this.removeAttribute('session');
    }
    if (this.connection) await this._drop();
    this._wanted = true;
    clearTimeout(this._retryTimer);
    this._setState(this._busyTries ? 'waiting' : this._attempts ? 'reconnecting' : 'connecting');
    const options = this._options();
    const connection = new HeadcastConnection(options);
    const events = ['speechstart', 'speechend', 'interrupted', 'error', 'stats', 'serverevent', '_lost', '_ended', 'autoplayblocked'];
    for (const type of events) {
      options.target.addEventListener(type, this._onEvent);
    }
    this.connection = connection;
    try {
      await connection.open();
      if (this.connection !== connection) throw new HeadcastError(CANCELLED); // superseded
    } catch (err) {
      await connection.close({ quiet: false });
      if (this.connection !== connection) throw err; // closed or replaced meanwhile: not ours to report
      this.connection = null;
      const message = err instanceof HeadcastError ? err.message : `Unexpected error: ${err.message || err}`;
      if (err.status === 503 && this._wanted && this._busyTries < BUSY_RETRIES) {
        this._waitForSlot(err);
        throw err;
      }
      // Refusals are final; a network error while reconnecting is worth another try.
      const retriable = this._attempts > 0 && !(err.status >= 400 && err.status < 500);
      if (retriable && this._wanted) {
        this._scheduleRetry(message);
      } else {
        this._wanted = false;
        this._attempts = 0;
        this._fail(message);
      }
      throw err;
    }
    this._attempts = 0;
    this._busyTries = 0;
    this.errorEl.textContent = '';
    connection.pc.addEventListener('connectionstatechange', () => this._watch(connection));
    this._setState('idle');
    this.dispatchEvent(new CustomEvent('connected', { detail: { session: connection.session.id, ready: connection.ready } }));
    return connection.session;
  }

  _watch(connection) {
    if (connection !== this.connection) return;
    const state = connection.pc ? connection.pc.connectionState : 'closed';
    clearTimeout(this._lostTimer);
    if (state === 'failed') this._lost('WebRTC connection failed');
    else if (state === 'disconnected') {
      this._lostTimer = setTimeout(() => this._lost('WebRTC connection lost'), DISCONNECTED_GRACE_MS);
    }
  }

  /** The session was deleted through the API (the site's back end ended it): no
   * reconnect, which would open a new session behind the back end's back. */
  async _ended(reason) {
    if (!this._wanted) return;
    this._wanted = false;
    this._attempts = 0;
    clearTimeout(this._retryTimer);
    clearTimeout(this._lostTimer);
    await this._drop();
    this._setState('disconnected', reason);
    this.errorEl.textContent = `The server closed the session: ${reason}`;
  }

  _lost(reason) {
    if (!this._wanted || this.state === 'reconnecting') return;
    this._drop();
    this._scheduleRetry(reason);
  }

  _scheduleRetry(reason) {
    if (this._attempts >= RECONNECT_ATTEMPTS) {
      this._wanted = false;
      this._attempts = 0;
      this._fail(`Gave up reconnecting: ${reason}`);
      return;
    }
    this._attempts += 1;
    this._setState('reconnecting', reason);
    const wait = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** (this._attempts - 1));
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._retryNow(), wait);
  }

  /** The server is full (503): wait as long as it says, then try again, showing why. */
  _waitForSlot(err) {
    this._busyTries += 1;
    const waitS = (err.retryAfterS ?? BUSY_DEFAULT_WAIT_S) * (0.9 + 0.2 * Math.random());
    this.lastError = err.message;
    this._setState('waiting', err.message);
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._retryNow(), waitS * 1000);
  }

  /** Sound on, after the browser refused to autoplay it (call it from a click). */
  unmute() {
    this.video.muted = this.hasAttribute('muted');
    this.video.play().catch(() => {});
    this.unmuteEl.hidden = true;
  }

  _retryNow() {
    clearTimeout(this._retryTimer);
    this.connect().catch(() => {});
  }

  async _drop() {
    const connection = this.connection;
    this.connection = null;
    this.unmuteEl.hidden = true;
    clearTimeout(this._lostTimer);
    if (connection) await connection.close({ quiet: !navigator.onLine });
  }

  _live() {
    if (!this.connection || !this.connection.ws) throw new HeadcastError('Not connected: call connect() first');
    return this.connection;
  }

  /** Say an audio file (WAV, MP3, OGG…); resolves with {duration_ms} once queued. */
  speak(blob) {
    return this._live().speak(blob);
  }

  /** Say typed text ({voice} optional: GET /v1/voices lists them); resolves with {voice, first_ms} once queued. */
  say(text, { voice } = {}) {
    return this._live().say(text, voice);
  }

  /** Stream speech: mono float32 samples (-1..1) at sampleRate Hz. */
  pushAudio(samples, sampleRate) {
    this._live().pushAudio(samples, sampleRate);
  }

  interrupt() {
    this._live().interrupt();
  }

  setEmotion(name) {
    this._live().setEmotion(name);
    this.setAttribute('emotion', name); // only once accepted: later connects start with it
  }

  /** Leave: closes the session on the server and stops reconnecting. */
  async close() {
    this._wanted = false;
    this._attempts = 0;
    this._busyTries = 0;
    clearTimeout(this._retryTimer);
    const had = this.connection !== null;
    await this._drop();
    if (had || this.state !== 'failed') this._setState('disconnected');
  }

  get sessionId() {
    return this.connection?.session?.id ?? null;
  }

  stats() {
    return this.connection ? this.connection.readStats() : Promise.resolve(null);
  }
}

if (!customElements.get('headcast-avatar')) customElements.define('headcast-avatar', HeadcastAvatar);
