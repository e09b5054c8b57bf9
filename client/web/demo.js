// The demo page: a <headcast-avatar>, a text box it speaks from, and the server's other controls.
import { HeadcastError } from '/headcast.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const avatar = $('avatar');
const ENROLL_POLL_MS = 500;
const ENROLL_TIMEOUT_MS = 120000;

$('server').value = params.get('server') || '';
$('token').value = params.get('token') || '';

function server() {
  return ($('server').value.trim() || location.origin).replace(/\/+$/, '');
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

async function api(method, path, { body, type } = {}) {
  const headers = {};
  const token = $('token').value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (type) headers['Content-Type'] = type;
  let response;
  try {
    response = await fetch(server() + path, { method, headers, body });
  } catch {
    throw new HeadcastError(`Cannot reach ${server()}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const detail = data && typeof data === 'object' ? data.detail : data;
    throw new HeadcastError(`${response.status}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`, response.status);
  }
  return data;
}

/** names: values, or [value, label] pairs */
function fillSelect(select, names, chosen) {
  const pairs = names.map((n) => (Array.isArray(n) ? n : [n, n]));
  select.replaceChildren(...pairs.map(([v, label]) => new Option(label, v, false, v === chosen)));
}

async function loadChoices() {
  try {
    const [config, avatars, voices] = await Promise.all([
      api('GET', '/v1/client/config'),
      api('GET', '/v1/avatars'),
      api('GET', '/v1/voices'),
    ]);
    fillSelect($('emotion'), config.emotions, 'neutral');
    const names = avatars.map((a) => a.name);
    const asked = params.get('avatar');
    fillSelect($('avatar-select'), names, asked || 'default');
    if (asked && !names.includes(asked)) {
      // the link names an avatar this server lacks: say so rather than show another face
      showError(`This server has no avatar named “${asked}” (it has ${names.join(', ')}); ` +
        `showing “${$('avatar-select').value}”. Pick another in the avatar menu, or enroll a portrait.`);
    }
    fillSelect(
      $('voice'),
      voices.voices.map((v) => [v.name, v.description ? `${v.name} (${v.description})` : v.name]),
      voices.default,
    );
    $('voice').hidden = voices.voices.length < 2;
    $('say-text').maxLength = voices.max_chars;
  } catch (err) {
    showError(err.status === 401 ? NEEDS_TOKEN : `Could not load avatars, emotions and voices: ${err.message}`);
  }
}

const NEEDS_TOKEN =
  'This server needs a session token: open the link that “headcast serve --demo-token” prints, ' +
  'or paste a token under “Server and token”.';

const HINTS = {
  disconnected: 'Press <b>Start</b> to bring the avatar to life.',
  connecting: 'Connecting…',
  waiting: 'The server is busy: waiting for a free slot…',
  failed: 'Could not connect (the reason is below). Press <b>Start</b> to try again.',
};

function setConnected(live) {
  $('connect').disabled = live;
  $('disconnect').disabled = !live;
  $('interrupt').disabled = !live;
  $('audio-file').disabled = !live;
  $('say').disabled = !live;
}

async function say() {
  const text = $('say-text').value.trim();
  if (!text) {
    showError('Type something for the avatar to say.');
    return;
  }
  try {
    await avatar.say(text, { voice: $('voice').value || undefined });
    showError('');
  } catch (err) {
    showError(`Cannot say this: ${err.message}`);
  }
}

async function connect() {
  showError('');
  avatar.setAttribute('server', server());
  avatar.setAttribute('avatar', $('avatar-select').value);
  avatar.setAttribute('emotion', $('emotion').value);
  avatar.setAttribute('input', $('mirror').checked ? 'mirror' : 'websocket');
  const token = $('token').value.trim();
  if (token) avatar.setAttribute('token', token);
  else avatar.removeAttribute('token');
  $('connect').disabled = true;
  try {
    await avatar.connect();
  } catch (err) {
    $('connect').disabled = false; // the widget shows the reason; so does the banner
  }
}

async function enroll(file) {
  const name = file.name.replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40) || 'portrait';
  showError('');
  $('enroll-error').hidden = true;
  $('enroll').hidden = false;
  $('enroll-progress').value = 0;
  $('enroll-message').textContent = 'uploading…';
  try {
    const upload = (as) => api('POST', `/v1/avatars?name=${encodeURIComponent(as)}`, { body: file, type: file.type || 'application/octet-stream' });
    let job;
    try {
      job = await upload(name); // the name asked for, the one `headcast render --avatar` finds
    } catch (err) {
      if (err.status !== 409) throw err;
      job = await upload(`${name}-${Date.now().toString(36)}`); // taken: a suffix, said below
    }
    const deadline = performance.now() + ENROLL_TIMEOUT_MS;
    while (job.state !== 'done' && job.state !== 'failed') {
      if (performance.now() > deadline) throw new HeadcastError('enrollment is taking too long; try a smaller portrait');
      await new Promise((r) => setTimeout(r, ENROLL_POLL_MS));
      job = await api('GET', `/v1/avatars/jobs/${job.id}`);
      $('enroll-progress').value = job.progress;
      $('enroll-message').textContent = job.message || job.state;
    }
    if (job.state === 'failed') throw new HeadcastError(`this portrait cannot be used: ${job.message}`);
    const select = $('avatar-select');
    select.add(new Option(job.avatar, job.avatar, true, true));
    const renamed = job.avatar !== name ? ` (“${name}” was taken)` : '';
    const live = ['idle', 'speaking', 'reconnecting'].includes(avatar.state);
    const next = live ? 'press Stop, then Start, to use it' : 'press Start to use it';
    $('enroll-message').textContent = `enrolled as “${job.avatar}”${renamed}; ${next}`;
  } catch (err) {
    $('enroll-message').textContent = '';
    $('enroll').hidden = true;
    // said beside the file picker, where the visitor is looking (on a phone the page's
    // error line is a screen away)
    $('enroll-error').textContent = `Portrait upload failed: ${err.message}`;
    $('enroll-error').hidden = false;
  }
}

avatar.addEventListener('statechange', (ev) => {
  const { state, reason } = ev.detail;
  $('status').dataset.state = state;
  $('status').textContent = avatar.stateEl.textContent; // the reason goes in the one banner
  setConnected(['idle', 'speaking', 'reconnecting'].includes(state));
  $('hint').hidden = !(state in HINTS);
  if (state in HINTS) $('hint').innerHTML = `<span>${HINTS[state]}</span>`;
  // a keyed server's refusal, in words a visitor can act on
  if (state === 'failed') showError(/needs a session token/.test(reason) ? NEEDS_TOKEN : reason);
  if (state === 'idle') showError('');
  // Stop clears what was shown; a session the server's owner deleted says so
  if (state === 'disconnected') showError(reason ? `The server closed the session: ${reason}` : '');
  if (state === 'disconnected' || state === 'failed') $('stats').textContent = 'not connected';
});
avatar.addEventListener('error', (ev) => {
  if (avatar.state !== 'failed') showError(ev.detail.message);
});
avatar.addEventListener('stats', (ev) => {
  const s = ev.detail;
  const f = (v, d = 0) => (v === null || v === undefined ? '–' : Number(v).toFixed(d));
  $('stats').textContent =
    `video ${s.width || '?'}×${s.height || '?'} at ${f(s.fps)} fps, decoded ${s.framesDecoded}\n` +
    `round trip ${f(s.rttMs)} ms, jitter video ${f(s.jitterMs)} ms / audio ${f(s.audioJitterMs)} ms\n` +
    `push→mouth ${f(s.pushToMouthMs)} ms (server delay ${f(s.delayMs)} ms)\n` +
    `A/V offset ${f(s.avOffsetMs)} ms, dropped ${s.framesDropped} here + ${s.serverDroppedFrames} at the server`;
});

$('connect').addEventListener('click', connect);
$('say-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  say();
});
$('say-text').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault(); // Enter says it, Shift+Enter is a new line
    if (!$('say').disabled) say();
    else if (['connecting', 'waiting', 'reconnecting'].includes(avatar.state)) {
      showError('Connecting: the avatar speaks once it is live.');
    } else showError('Press Start first: the avatar speaks once it is live.');
  }
});
$('disconnect').addEventListener('click', () => avatar.close());
$('interrupt').addEventListener('click', () => {
  try {
    avatar.interrupt();
  } catch (err) {
    showError(err.message);
  }
});
$('emotion').addEventListener('change', () => {
  avatar.setAttribute('emotion', $('emotion').value); // the next connect starts with it
  if (avatar.state !== 'idle' && avatar.state !== 'speaking') return; // not live yet
  try {
    avatar.setEmotion($('emotion').value);
  } catch (err) {
    showError(err.message);
  }
});
$('audio-file').addEventListener('change', async () => {
  const file = $('audio-file').files[0];
  if (!file) return;
  try {
    await avatar.speak(file);
    showError('');
  } catch (err) {
    showError(`Cannot speak this file: ${err.message}`);
  }
  $('audio-file').value = '';
});
$('portrait').addEventListener('change', () => {
  const file = $('portrait').files[0];
  if (file) enroll(file);
  $('portrait').value = '';
});
$('mirror').addEventListener('change', () => {
  if (avatar.connection) connect(); // the microphone is negotiated with the video
});
$('sound').addEventListener('change', () => {
  avatar.toggleAttribute('muted', !$('sound').checked);
});
avatar.toggleAttribute('muted', !$('sound').checked);

loadChoices();
if (params.has('autoconnect')) connect();
