// The listening study in the browser: consent, screening, then each version of each passage played
// the way the reader plays it and rated on three questions.
//
// Runs as gr.HTML's js_on_load body (`element`, `props` come from Gradio). It talks only to the
// study API (props.api_root, relative to the page): the page never learns which condition a label
// stands for, only opaque asset tokens. The anonymous participant id lives in localStorage, so a
// reload resumes at the first version not yet rated; so do the choices not yet submitted.
//
// Audio follows the reader (static/reader.js): one looping AudioBufferSourceNode + GainNode per
// page -> bus -> destination; a page turn fades the old page out and the new one in with
// equal-power curves (cos/sin) that start from each gain's current value, and a forward turn into
// a scene's first page plays the transition the version's director chose there (its `enter`).

const root = element.querySelector('.st-root');
const body = root.querySelector('.st-body');
const API = String(props.api_root || 'study/api').replace(/\/+$/, '');

const S = {
  info: null, pid: null, session: null, rated: new Map(), screen: 'loading',
  si: 0, vi: 0, page: 0, listened: new Set(), drafts: {},
  // buffers: token -> the clip's decoding (a promise); decoded: token -> the AudioBuffer once it is
  ctx: null, bus: null, voices: [], buffers: new Map(), decoded: new Map(), fade: 1.5, hiddenPause: false,
  errors: [], fades: [], stingers: [], submits: 0, retries: 0, recovered: 0,
  // Listening time per version key, in seconds of the audio clock, summed over "Listen again" visits;
  // `clock` is the open visit ({ k, since }) while a listening screen is up, else null.
  heard: new Map(), clock: null,
};

// ---------------------------------------------------------------------------------------------
// HTTP

function url(path) { return new URL(API + '/' + path, document.baseURI).href; }

async function call(method, path, payload) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (payload !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(payload);
  }
  let res;
  try { res = await fetch(url(path), init); } catch (err) {
    // Only the fact: each caller says what became of the participant's answers.
    return { ok: false, status: 0, error: 'The server cannot be reached.' };
  }
  let data = null;
  try { data = await res.json(); } catch (err) { data = null; }
  if (res.ok) return { ok: true, status: res.status, data };
  const message = (data && data.error) || ('HTTP ' + res.status);
  return { ok: false, status: res.status, error: message };
}

function asset(token) { return url('asset/' + encodeURIComponent(S.pid) + '/' + encodeURIComponent(token)); }
function storageKey() { return 'study-participant:' + S.info.study; }
function draftKey() { return 'study-drafts:' + S.info.study + ':' + S.pid; }
function key(stimulus, label) { return stimulus + '|' + label; }

// ---------------------------------------------------------------------------------------------
// Audio (the reader's approach, smaller: no library of runs, one version at a time)

function ensureContext() {
  if (S.ctx) return S.ctx;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { S.errors.push('Web Audio is not available'); return null; }
  S.ctx = new Ctx({ latencyHint: 'interactive' });
  S.bus = S.ctx.createGain();
  S.bus.gain.value = 0.8;
  S.bus.connect(S.ctx.destination);
  return S.ctx;
}

// The page hides the study (the app's Read tab has its own music): the clip must not play on top of
// it. Suspending the context stops the audio clock, so every voice and fade goes on from where it was.
// Gradio hides a tab with display:none and tells us nothing, so the study looks for itself.
function followVisibility() {
  if (!S.ctx) return;
  const shown = visible();
  if (!shown && S.ctx.state === 'running') {
    S.hiddenPause = true;
    S.ctx.suspend();
  } else if (shown && S.hiddenPause) {
    // Only a context this function suspended: one still waiting for the first click stays silent.
    S.hiddenPause = false;
    if (S.ctx.state === 'suspended') S.ctx.resume();
  }
}
setInterval(followVisibility, 200);

function stopVoice(v) {
  try { v.src.stop(); } catch (err) { /* already stopped: nothing to release */ }
  v.src.disconnect(); v.gain.disconnect();
}

function prune() {
  if (!S.ctx) return;
  const now = S.ctx.currentTime;
  S.voices = S.voices.filter((v) => {
    const done = v.target === 0 && now >= v.curveStart + v.curveDur + 0.02;
    if (done) stopVoice(v);
    return !done;
  });
}
setInterval(prune, 250);

function loadClip(token) {
  if (S.buffers.has(token)) return S.buffers.get(token);
  const promise = (async () => {
    const bytesOf = async (url) => {
      const res = await fetch(url);
      if (!res.ok) throw new Error('HTTP ' + res.status + ' for a music clip');
      return res.arrayBuffer();
    };
    const ogg = await bytesOf(asset(token));  // an HTTP error is final
    let buffer;
    try {
      buffer = await S.ctx.decodeAudioData(ogg);
    } catch (err) {
      // A browser without OGG Vorbis (older Safari): the same clip as lossless FLAC.
      S.errors.push('clip: ' + String(err && err.message || err) + '; trying FLAC');
      buffer = await S.ctx.decodeAudioData(await bytesOf(asset(token) + '?format=flac'));
    }
    S.decoded.set(token, buffer);
    return buffer;
  })();
  promise.catch((err) => { S.buffers.delete(token); S.errors.push(String(err && err.message || err)); });
  S.buffers.set(token, promise);
  return promise;
}

// The steady law's scale of a plain crossfade into `token`'s clip (crossfade.js
// soleVoiceSteadyScale), as the reader and the whole-book file have it: from the one voice sounding
// at full gain, where it is now, into the new clip from where it enters; null (equal power) for
// anything else: a clip not decoded yet (its fade-out cannot wait for it), a voice of it still
// sounding, a stinger, a voice mid-fade, a silence or a stinger's move.
function steadyScaleOf(token, plan, grid) {
  if (S.voices.some((v) => v.token === token && !v.stinger)) return null;
  const buffer = S.decoded.get(token);
  return soleVoiceSteadyScale(S.ctx, S.voices, buffer, plan, grid && buffer ? gridOffset(grid, S.ctx.currentTime, buffer.duration) : 0);
}

// Make `token` the only clip heading for full gain (null: silence), with equal-power fades (scaled
// by the steady law, crossfade.js steadyScale, between two clips); `move`: the transition chosen
// into this page (the version's `enter`, on a turn from the page before), played as the reader plays it
// (crossfade.js fadesOf): a crossfade of its length, a cut, a silence, or the old scene's stinger
// before the new page enters; `plain`: the seconds of a plain crossfade; `bar`: seconds a bar of
// the clip lasts (0: no bar grid), so it enters on the old clip's grid as in the reader.
async function playClip(token, reason, move = null, plain = S.fade, bar = 0) {
  if (!ensureContext()) return;
  const plan = fadesOf(move, plain), turnAt = S.ctx.currentTime;
  const grid = token && !S.voices.some((v) => v.token === token && !v.stinger) ? barGridOf(S.ctx, S.voices, bar, plan) : null;
  const scale = token ? steadyScaleOf(token, plan, grid) : null;
  const fades = [];
  for (const v of S.voices) if (v.token !== token && v.target !== 0) fades.push({ token: v.token, ...fadeVoice(S.ctx, v, 0, plan.out, 0, scale) });
  S.fades.push({ reason, token, at: performance.now(), ctxTime: turnAt, fades, move: move ? move.kind : null });
  if (!token) return;
  if (move && move.kind === 'stinger' && move.stinger) playStinger(move.stinger, token);
  let buffer;
  try { buffer = await loadClip(token); } catch (err) { return; }
  // The participant may have turned again while the clip loaded: only the current page's clip starts.
  if (currentClip() !== token || S.screen !== 'listen') return;
  // a silence or a stinger holds the new page back from the turn, however long its clip took to load
  const delay = Math.max(0, turnAt + plan.delay - S.ctx.currentTime);
  let v = S.voices.find((x) => x.token === token && !x.stinger);
  if (!v) {
    const src = S.ctx.createBufferSource();
    src.buffer = buffer;
    src.loop = true;  // clips are made to loop: the music lasts as long as the page is read
    const gain = S.ctx.createGain();
    gain.gain.setValueAtTime(0, S.ctx.currentTime);
    src.connect(gain).connect(S.bus);
    const at = S.ctx.currentTime + delay, offset = grid ? gridOffset(grid, at, buffer.duration) : 0;
    src.start(at, offset);  // after a silence or a stinger, from the clip's beginning
    v = { token, src, gain, clipStart: at - offset, bar, curve: null, curveStart: 0, curveDur: 0, hold: 0, target: 0 };
    S.voices.push(v);
  }
  if (v.target !== 1) S.fades.push({ reason, token, at: performance.now(), fades: [fadeVoice(S.ctx, v, 1, plan.in, delay, scale)] });
}

// The old scene's closing cadence, once, from now at full gain (a voice of its own: the next turn
// fades it like any other); one not loaded by the time the turn comes is skipped, the new page still
// waiting out its length, as in the reader.
async function playStinger(stingerToken, pageToken) {
  const asked = S.ctx.currentTime;
  let buffer;
  try { buffer = await loadClip(stingerToken); } catch (err) { return; }
  if (currentClip() !== pageToken || S.ctx.currentTime - asked > 0.25) {
    S.stingers.push({ token: stingerToken, played: false });
    return;
  }
  S.voices.push(oneShotVoice(S.ctx, S.bus, buffer, { token: stingerToken }));
  S.stingers.push({ token: stingerToken, played: true, start: S.ctx.currentTime, seconds: buffer.duration });
}

function silence(reason) {
  if (!S.ctx) return;
  for (const v of S.voices) if (v.target !== 0) fadeVoice(S.ctx, v, 0, S.fade);
  S.fades.push({ reason, token: null, at: performance.now(), fades: [] });
}

// ---------------------------------------------------------------------------------------------
// Listening time, so a researcher can tell attentive ratings from rushed ones (it is recorded, never
// enforced). Measured on the AudioContext's clock, not the wall clock: that clock stands still while
// the context is suspended (the study's tab hidden, see followVisibility, or sound not yet allowed),
// so only time with the study's audio running counts, with no bookkeeping of our own.

function audioNow() { return S.ctx ? S.ctx.currentTime : null; }

// A visit starts at the first page shown (page turns within it do not restart it).
function startListening(k) {
  if (S.clock) stopListening();
  const now = audioNow();
  if (now !== null) S.clock = { k, since: now };
}

// Ends the open visit, if any, and adds it to its version's total.
function stopListening() {
  const clock = S.clock, now = audioNow();
  S.clock = null;
  if (!clock || now === null) return;
  S.heard.set(clock.k, (S.heard.get(clock.k) || 0) + Math.max(0, now - clock.since));
}

// Seconds to send with a rating (0.01 s is plenty), or undefined when nothing was measured in this
// page load (e.g. "Change" after a reload): the server then keeps what it has.
function listenedSeconds(k) {
  return S.heard.has(k) ? Math.round(S.heard.get(k) * 100) / 100 : undefined;
}

// ---------------------------------------------------------------------------------------------
// Where the participant is

function stimulus() { return S.session.stimuli[S.si]; }
function version() { return stimulus().versions[S.vi]; }
function currentClip() { return S.screen === 'listen' ? version().audio[S.page] : null; }

function firstOpen() {
  for (let si = 0; si < S.session.stimuli.length; si++) {
    const stim = S.session.stimuli[si];
    for (let vi = 0; vi < stim.versions.length; vi++) {
      if (!S.rated.has(key(stim.stimulus, stim.versions[vi].label))) return { si, vi };
    }
  }
  return null;
}

function totalVersions() { return S.session.stimuli.reduce((n, s) => n + s.versions.length, 0); }

// ---------------------------------------------------------------------------------------------
// Screens

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === 'class') el.className = value;
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, '');
    else if (value !== false && value !== null && value !== undefined) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

function show(screen, ...children) {
  S.screen = screen;
  root.dataset.screen = screen;
  body.replaceChildren(...children);
}

function message(text, kind) { return h('p', { class: 'st-msg st-' + (kind || 'info'), role: kind === 'error' ? 'alert' : 'status' }, text); }

function scaleQuestion(name, question, labels, value, numbered) {
  const options = labels.map((label, i) => {
    const score = i + 1;
    const id = 'st-' + name + '-' + score;
    return h('label', { class: 'st-option', for: id },
      h('input', { type: 'radio', name: 'st-' + name, id, value: score, checked: value === score }),
      h('span', { class: 'st-score' }, numbered ? String(score) : ''), h('span', { class: 'st-label' }, label));
  });
  return h('fieldset', { class: 'st-question', 'data-key': name }, h('legend', {}, question), h('div', { class: 'st-scale' }, options));
}

function chosen(name) {
  const input = body.querySelector('input[name="st-' + name + '"]:checked');
  return input ? input.value : null;
}

// The "Please answer…" note leaves as soon as the last question is answered, not at the next click.
function incomplete(text) {
  const note = message(text, 'error');
  note.classList.add('st-incomplete');
  return note;
}

function clearWhenAnswered(fieldsets, names, status) {
  const check = () => {
    const note = status.querySelector('.st-incomplete');
    if (note && names.every((name) => chosen(name) !== null)) note.remove();
  };
  for (const f of fieldsets) f.addEventListener('change', check);
}

// Choices not yet submitted, per version: "Listen again" rebuilds the rating screen and a reload
// rebuilds the page, and neither should cost the participant an answer. Kept until it is saved.
function loadDrafts() {
  let drafts = null;
  try { drafts = JSON.parse(localStorage.getItem(draftKey()) || 'null'); } catch (err) { drafts = null; }
  S.drafts = drafts && typeof drafts === 'object' && !Array.isArray(drafts) ? drafts : {};
}

function saveDraft(k, answer) {
  if (answer && Object.keys(answer).length) S.drafts[k] = answer; else delete S.drafts[k];
  try {
    if (Object.keys(S.drafts).length) localStorage.setItem(draftKey(), JSON.stringify(S.drafts));
    else localStorage.removeItem(draftKey());
  } catch (err) { S.errors.push('localStorage: ' + err); }
}

function choices() {
  const answer = {};
  for (const c of S.info.criteria) { const value = chosen(c.key); if (value !== null) answer[c.key] = Number(value); }
  return answer;
}

// A failed call, for the participant: a refusal (400) says what was wrong; anything else (the server
// unreachable or failing) says the answers are kept and which button sends them again.
// Submit a rating until the server acknowledges it, or it is clear that it will not. The store keeps
// one rating per participant and version (a second submission replaces the first), so sending again
// never duplicates one. A network failure or a busy server is retried a few times; before each retry,
// and when the tries are spent, the participant's saved ratings are read back: an answer the server
// stored whose acknowledgement was lost on the way is then taken as saved, never shown as unsent.
// Returns the call's result, with `data` holding the saved scores when it is ok.
const SUBMIT_RETRIES_MS = [600, 1500, 3000];
async function submitRating(answer, retrying) {
  let res = null;
  for (let attempt = 0; ; attempt += 1) {
    res = await call('POST', 'rate/' + encodeURIComponent(S.pid), answer);
    S.submits += 1;
    if (res.ok || !retriable(res)) return res;
    const stored = await storedRating(answer);
    if (stored) { S.recovered += 1; return { ok: true, status: 200, data: stored }; }
    if (attempt >= SUBMIT_RETRIES_MS.length) return res;
    S.retries += 1;
    if (retrying) retrying();
    await new Promise((done) => setTimeout(done, SUBMIT_RETRIES_MS[attempt]));
  }
}

// No answer (status 0: the network), a server error or a busy server: the same request may succeed.
function retriable(res) { return res.status === 0 || res.status === 429 || res.status >= 500; }

// The participant's saved rating of this version, when it holds exactly these scores.
async function storedRating(answer) {
  const state = await call('GET', 'state/' + encodeURIComponent(S.pid));
  if (!state.ok || !state.data || !Array.isArray(state.data.rated)) return null;
  const row = state.data.rated.find((r) => r.stimulus === answer.stimulus && r.label === answer.label);
  return row && S.info.criteria.every((c) => row[c.key] === answer[c.key]) ? row : null;
}

function failure(res, button) {
  return res.status === 400 ? res.error : res.error + ' Your answers are still here: press ' + button + ' again.';
}

function showError(text) { S.errors.push(text); return h('div', { class: 'st-error-box' }, message(text, 'error')); }

function consentScreen() {
  const agree = h('input', { type: 'checkbox', id: 'st-agree' });
  const go = h('button', { class: 'st-btn st-primary', type: 'button', disabled: true, id: 'st-consent-go' }, 'Continue');
  agree.addEventListener('change', () => { go.disabled = !agree.checked; });
  go.addEventListener('click', () => { if (agree.checked) screeningScreen(); });
  show('consent',
    h('h2', {}, S.info.title),
    h('div', { class: 'st-consent' }, S.info.consent_text),
    h('p', { class: 'st-hint' }, 'Please use headphones and a quiet room. You will hear ' + S.info.stimuli +
      ' short passages, each in three versions (A, B, C), and rate each version.'),
    h('label', { class: 'st-agree', for: 'st-agree' }, agree, ' I have read this and agree to take part.'),
    h('div', { class: 'st-actions' }, go));
}

function screeningScreen(error) {
  const questions = S.info.screening.map((q) => {
    if (q.key === 'japanese') {
      const options = S.info.japanese_levels.map((level) => {
        const id = 'st-japanese-' + level.key;
        return h('label', { class: 'st-option', for: id },
          h('input', { type: 'radio', name: 'st-japanese', id, value: level.key }), h('span', { class: 'st-label' }, level.label));
      });
      return h('fieldset', { class: 'st-question', 'data-key': 'japanese' }, h('legend', {}, q.question),
        h('div', { class: 'st-scale st-words' }, options));
    }
    return scaleQuestion(q.key, q.question, S.info.interest_scale, null, true);
  });
  const go = h('button', { class: 'st-btn st-primary', type: 'button', id: 'st-register' }, 'Start the study');
  const status = h('div', { class: 'st-status' }, error ? showError(error) : null);
  go.addEventListener('click', async () => {
    const screening = {};
    for (const q of S.info.screening) {
      const value = chosen(q.key);
      if (value === null) { status.replaceChildren(incomplete('Please answer every question.')); return; }
      screening[q.key] = q.key === 'japanese' ? value : Number(value);
    }
    go.disabled = true;
    status.replaceChildren(message('Registering…'));
    const res = await call('POST', 'register', { consent: true, screening });
    if (!res.ok) {
      go.disabled = false;
      status.replaceChildren(showError(failure(res, 'Start')));
      return;
    }
    S.pid = res.data.participant;
    try { localStorage.setItem(storageKey(), S.pid); } catch (err) { S.errors.push('localStorage: ' + err); }
    await resume();
  });
  clearWhenAnswered(questions, S.info.screening.map((q) => q.key), status);
  show('screening', h('h2', {}, 'About you'),
    h('p', { class: 'st-hint' }, 'Three short questions before we start. Your answers are stored under an anonymous id.'),
    ...questions, status, h('div', { class: 'st-actions' }, go));
}

function header() {
  const stim = stimulus(), v = version();
  const done = S.rated.size, total = totalVersions();
  return h('div', { class: 'st-head' },
    h('div', { class: 'st-where' },
      h('span', { class: 'st-passage' }, 'Passage ' + (S.si + 1) + ' of ' + S.session.stimuli.length),
      h('span', { class: 'st-version' }, 'Version ' + v.label),
      h('span', { class: 'st-count' }, '(' + (S.vi + 1) + ' of ' + stim.versions.length + ')')),
    h('div', { class: 'st-progress', title: done + ' of ' + total + ' rated' },
      h('div', { class: 'st-progress-fill', style: 'width:' + (100 * done / total).toFixed(1) + '%' })));
}

function introScreen() {
  // A click is needed before sound may start; it also marks the start of listening to this version.
  const go = h('button', { class: 'st-btn st-primary st-play', type: 'button', id: 'st-play' }, '▶︎ Play version ' + version().label);
  go.addEventListener('click', () => { ensureContext(); S.ctx.resume(); listenScreen(0); });
  const v = version();
  for (const token of v.audio) if (S.ctx) loadClip(token);
  show('intro', header(),
    h('p', { class: 'st-hint' }, 'Read the ' + v.pages.length + ' pages of this passage at your own pace; the music follows the pages. ' +
      'Turn with the buttons, the arrow keys or the space bar. After the last page you rate this version.'),
    h('div', { class: 'st-actions' }, go));
}

// `from`: the page a turn came from (null: the passage opens here).
function listenScreen(page, from = null) {
  const v = version();
  S.page = Math.max(0, Math.min(v.pages.length - 1, page));
  const k = key(stimulus().stimulus, v.label);
  if (S.page === v.pages.length - 1) S.listened.add(k);
  const img = h('img', { class: 'st-page', src: asset(v.pages[S.page]), alt: 'Page ' + (S.page + 1) + ' of ' + v.pages.length, draggable: 'false' });
  // a two-page spread (wider than tall): on a phone it keeps a readable height and scrolls (study.css)
  const markSpread = () => {
    if (img.parentElement) img.parentElement.classList.toggle('st-wide', img.naturalWidth > img.naturalHeight);
  };
  img.addEventListener('load', markSpread);
  // Manga order, as the arrow keys: the next page is to the left (the button and the key agree).
  const prev = h('button', { class: 'st-btn', type: 'button', id: 'st-prev', disabled: S.page === 0 }, 'Previous page ›');
  const next = h('button', { class: 'st-btn', type: 'button', id: 'st-next', disabled: S.page === v.pages.length - 1 }, '‹ Next page');
  const rate = h('button', { class: 'st-btn st-primary', type: 'button', id: 'st-to-rate',
    disabled: !S.listened.has(k) }, 'Rate version ' + v.label);
  prev.addEventListener('click', () => turn(-1));
  next.addEventListener('click', () => turn(1));
  rate.addEventListener('click', () => rateScreen());
  const wasListening = S.screen === 'listen';
  if (!wasListening) startListening(k);
  show('listen', header(), h('div', { class: 'st-stage' }, img),
    h('div', { class: 'st-nav' }, next, h('span', { class: 'st-pages' }, 'Page ' + (S.page + 1) + ' / ' + v.pages.length), prev),
    h('div', { class: 'st-actions' }, rate));
  if (img.complete && img.naturalWidth) markSpread();  // cached: its size is known before any paint
  for (const token of v.pages) { const pre = new Image(); pre.src = asset(token); }
  for (const token of v.audio) loadClip(token);
  for (const e of v.enter || []) if (e && e.stinger) loadClip(e.stinger);
  // a forward turn plays how the version's cue sheet enters the page: the transition chosen there, or a
  // crossfade of its length (the scene crossfade between two scenes); any other turn the study's crossfade
  const forward = wasListening && from === S.page - 1;
  const move = forward ? (v.enter || [])[S.page] || null : null;
  const plain = forward ? Number((v.fades || [])[S.page]) || S.fade : S.fade;
  playClip(v.audio[S.page], wasListening ? 'turn' : 'start', move, plain, Number((v.bars || [])[S.page]) || 0);
}

function turn(step) {
  if (S.screen !== 'listen') return;
  const target = S.page + step;
  if (target < 0 || target >= version().pages.length) return;
  listenScreen(target, S.page);
}

function rateScreen(error) {
  stopListening();
  silence('rate');
  const v = version(), stim = stimulus();
  const k = key(stim.stimulus, v.label);
  // Unsent choices win over the saved rating: they are the newer answer ("Change", then "Listen again").
  const previous = { ...(S.rated.get(k) || {}), ...(S.drafts[k] || {}) };
  const questions = S.info.criteria.map((c) => scaleQuestion(c.key, c.question, S.info.scale, previous[c.key] || null, true));
  const again = h('button', { class: 'st-btn', type: 'button', id: 'st-again' }, '↺ Listen again');
  const submit = h('button', { class: 'st-btn st-primary', type: 'button', id: 'st-submit' }, 'Submit rating');
  const status = h('div', { class: 'st-status' }, error ? showError(error) : null);
  for (const q of questions) q.addEventListener('change', () => saveDraft(k, choices()));
  clearWhenAnswered(questions, S.info.criteria.map((c) => c.key), status);
  again.addEventListener('click', () => { ensureContext(); S.ctx.resume(); listenScreen(0); });
  submit.addEventListener('click', async () => {
    const picked = choices();
    if (S.info.criteria.some((c) => !(c.key in picked))) {
      status.replaceChildren(incomplete('Please answer all three questions.'));
      return;
    }
    const answer = { stimulus: stim.stimulus, label: v.label, ...picked };
    const listened = listenedSeconds(k);
    if (listened !== undefined) answer.listened_s = listened;
    submit.disabled = true;
    status.replaceChildren(message('Saving…'));
    const res = await submitRating(answer, () => status.replaceChildren(message('Saving… (trying again)')));
    if (!res.ok) {
      submit.disabled = false;
      // 503 or no network: the answer stays on screen for another try; 400: the message says what to fix.
      status.replaceChildren(showError(failure(res, 'Submit')));
      return;
    }
    saveDraft(k, null);
    const saved = {};
    for (const c of S.info.criteria) saved[c.key] = res.data[c.key];
    S.rated.set(k, saved);
    next();
  });
  show('rate', header(), h('p', { class: 'st-hint' }, 'Version ' + v.label + ': 1 is very low, 5 is very high.'),
    ...questions, status, h('div', { class: 'st-actions' }, again, submit));
}

function next() {
  const open = firstOpen();
  if (!open) { doneScreen(); return; }
  S.si = open.si; S.vi = open.vi;
  introScreen();
}

function doneScreen() {
  silence('done');
  const rows = [];
  S.session.stimuli.forEach((stim, si) => stim.versions.forEach((v, vi) => {
    const saved = S.rated.get(key(stim.stimulus, v.label));
    const change = h('button', { class: 'st-btn st-small', type: 'button', 'data-version': si + '-' + vi }, 'Change');
    change.addEventListener('click', () => { S.si = si; S.vi = vi; S.listened.add(key(stim.stimulus, v.label)); rateScreen(); });
    rows.push(h('li', {}, 'Passage ' + (si + 1) + ', version ' + v.label + ': ' +
      (saved ? S.info.criteria.map((c) => c.name + ' ' + saved[c.key]).join(' · ') : 'not rated'), ' ', change));
  }));
  show('done', h('h2', {}, 'Thank you!'),
    h('p', {}, 'All your ratings are saved. You may close this page, or change an answer below.'),
    h('ul', { class: 'st-summary' }, rows));
}

// ---------------------------------------------------------------------------------------------
// Start and resume

async function resume() {
  const session = await call('GET', 'session/' + encodeURIComponent(S.pid));
  if (!session.ok) {
    if (session.status === 404) {
      // This browser's id is unknown here (a new study or a new database): start afresh.
      try { localStorage.removeItem(storageKey()); localStorage.removeItem(draftKey()); } catch (err) { S.errors.push('localStorage: ' + err); }
      S.pid = null;
      consentScreen();
    } else show('error', showError(session.error), retryButton());
    return;
  }
  S.session = session.data;
  loadDrafts();
  const state = await call('GET', 'state/' + encodeURIComponent(S.pid));
  if (!state.ok) { show('error', showError(state.error), retryButton()); return; }
  S.rated = new Map(state.data.rated.map((r) => [key(r.stimulus, r.label), r]));
  next();
}

function retryButton() {
  const b = h('button', { class: 'st-btn', type: 'button' }, 'Try again');
  b.addEventListener('click', () => boot());
  return h('div', { class: 'st-actions' }, b);
}

async function boot() {
  show('loading', message('Loading the study…'));
  const info = await call('GET', 'info');
  if (!info.ok) { show('error', showError('The study cannot be loaded: ' + info.error), retryButton()); return; }
  S.info = info.data;
  S.fade = Math.max(0.05, Number(S.info.crossfade_s) || 1.5);
  try { S.pid = localStorage.getItem(storageKey()); } catch (err) { S.pid = null; }
  if (S.pid) await resume(); else consentScreen();
}

function visible() { return root.offsetParent !== null; }

document.addEventListener('keydown', (e) => {
  if (S.screen !== 'listen' || !visible() || e.altKey || e.ctrlKey || e.metaKey) return;
  const tag = e.target && e.target.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
  // Space on a focused button presses that button; turning as well would move two pages.
  if (tag === 'BUTTON' && e.key === ' ') return;
  // Manga read right to left: the left arrow goes forward, as in the reader.
  let step = 0;
  if (e.key === 'ArrowLeft' || e.key === ' ' || e.key === 'PageDown') step = 1;
  else if (e.key === 'ArrowRight' || e.key === 'PageUp') step = -1;
  if (step) { e.preventDefault(); turn(step); }
});

// A window on the player's state, for tests.
window.studyPlayer = {
  state() {
    const now = S.ctx ? S.ctx.currentTime : 0;
    return {
      screen: S.screen, participant: S.pid, stimulus: S.session ? stimulus().stimulus : null,
      label: S.session ? version().label : null, page: S.page, rated: S.rated.size,
      total: S.session ? totalVersions() : 0, ctxState: S.ctx ? S.ctx.state : 'none',
      voices: S.voices.map((v) => ({ gain: Number(gainAt(v, now).toFixed(4)), target: v.target, stinger: !!v.stinger,
                                     clipStart: v.clipStart === undefined ? null : Number(v.clipStart.toFixed(4)), bar: v.bar || 0 })),
      fades: S.fades.slice(-50), stingers: S.stingers.slice(), errors: S.errors.slice(), submits: S.submits, retries: S.retries, recovered: S.recovered,
      heard: Object.fromEntries([...S.heard].map(([k, s]) => [k, Number(s.toFixed(3))])),
    };
  },
};

if (props.study_css && !document.getElementById('study-css')) {
  const style = document.createElement('style');
  style.id = 'study-css';
  style.textContent = props.study_css;
  document.head.appendChild(style);
}
boot();
