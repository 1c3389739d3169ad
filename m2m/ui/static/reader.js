// The m2m reader: pages with a CSS 3D page turn, and Web Audio music that follows the page.
//
// Runs as gr.HTML's js_on_load body: `element`, `trigger`, `props` and `watch` come from Gradio.
// The template is static, so Gradio never re-renders (and never resets) the DOM built here; new
// data arrives through watch('value') and is applied as a diff (new clips, a new run, a new book).
//
// Audio graph: one AudioBufferSourceNode (looping) + GainNode per voice -> bus GainNode (volume,
// mute, music on/off) -> destination. A turn fades every other voice out and the page's voice in
// with equal-power curves (sin/cos) starting from wherever each gain is now, so fast turns never
// jump in loudness and never stack sources: a voice is stopped and disconnected once silent.

const root = element.querySelector('.m2m-reader');
const $ = (sel) => root.querySelector(sel);
const stage = $('.m2m-stage');
const bookEl = $('.m2m-book');
const startEl = $('.m2m-start');
const endEl = $('.m2m-end');
const noteEl = $('.m2m-pagenote');
const slider = $('.m2m-slider');
const counter = $('.m2m-counter');
const halvesEl = $('.m2m-halves');
const engineEl = $('.m2m-engine');
const musicBtn = $('.m2m-music');
const muteBtn = $('.m2m-mute');
const volumeEl = $('.m2m-volume');
const progressFill = $('.m2m-progress-fill');

const KEEP_AROUND = 2;      // decoded buffers kept this many pages either side of the page on screen
const TURN_MS = 620;
const HOLD_MS = 5000;      // the longest the music on now waits for a page's clip before it fades out
const END_FADE_S = 4;      // past the last page the music fades out slowly, as a film's does
// The pull (see pull()): how often while music is being made or just after a save or a settings
// change; how often otherwise (cheap, and it catches anything missed); how long after a turn is sent
// its answer may take before the pull asks again; how long a save or a settings change keeps it quick.
const PULL_MS = 1500;
const IDLE_PULL_MS = 15000;
const TURN_ANSWER_MS = 1500;
const WAKE_MS = 12000;
const SPEAKER = '<path d="M3 9v6h4l5 4V5L7 9H3z" fill="currentColor"/>';
const ICON_SOUND = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">' + SPEAKER +
  '<path d="M15.5 8.5a5 5 0 0 1 0 7M18 6a8.5 8.5 0 0 1 0 12" stroke="currentColor" stroke-width="1.8" fill="none" stroke-linecap="round"/></svg>';
const ICON_MUTED = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">' + SPEAKER +
  '<path d="M16 9l5 6M21 9l-5 6" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>';

const R = {
  value: null, book: null, run: null, page: 0, half: 0, dir: 'rtl', fade: 1.5, ended: false,
  ctx: null, bus: null, started: false, musicOn: true, muted: false, volume: 0.8,
  buffers: new Map(),   // "run|page|version" -> {page, version, buffer, promise, requestedAt, decodedAt, error}
  failed: new Map(),    // "run|page|version" -> why the clip could not be fetched or decoded (cleared on success)
  stingers: new Map(),  // stinger url -> {buffer, promise, error}: the old scenes' closing cadences
  voices: [],           // {id, run, page, version, src, gain, curve, curveStart, curveDur, hold, target, startedAt,
                        //  clipStart: the audio clock time its clip starts from its beginning,
                        //  bar: seconds a bar of its clip lasts, 0 for none}
  prefetchLog: [], turns: [], fades: [], errors: [], notes: [],
  startGestureAt: null, firstAudibleAt: null, anim: null, notifyTimer: null, voiceSeq: 0, turnSeq: 0,
  holdTimer: null, holdPage: null, heldFor: null,
  // a turn into a page whose clip had not landed yet: its move, played when the clip lands and timed
  // from the turn (a silence or a stinger still waits from there). {page, run, move, plain, at: audio clock}
  pendingTurn: null,
  // the server's versioned state (pull()): the newest value applied, the session's token, the pull loop
  version: 0, token: '', pullTimer: null, pulling: false, pullAgain: false, working: true, activeUntil: 0,
  lastTurnAt: -Infinity, lastGap: '', pulls: 0, resyncs: 0, stale: 0, pullLog: [],
};

// Append to one of the logs state() shows, keeping its newest `limit` entries.
function record(log, entry, limit = 400) {
  log.push(entry);
  if (log.length > limit) log.splice(0, log.length - limit);
}

function reducedMotion() {
  return !!(window.matchMedia && window.matchMedia('(prefers-reduced-motion: reduce)').matches);
}

// ---------------------------------------------------------------------------------------------
// Audio

function ensureContext() {
  if (R.ctx) return R.ctx;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { R.errors.push('Web Audio is not available in this browser'); return null; }
  // Created suspended (no gesture yet): decoding works, nothing sounds until resume().
  R.ctx = new Ctx({ latencyHint: 'interactive' });
  R.bus = R.ctx.createGain();
  R.bus.gain.value = busLevel();
  R.bus.connect(R.ctx.destination);
  return R.ctx;
}

function busLevel() { return (R.muted || !R.musicOn) ? 0 : R.volume * R.volume; }  // perceptual-ish taper

function setBus() {
  if (!R.bus) return;
  const now = R.ctx.currentTime;
  R.bus.gain.cancelScheduledValues(now);
  R.bus.gain.setTargetAtTime(busLevel(), now, 0.05);  // ~150 ms glide: no click on mute or volume
}



// `delay`: seconds from now the clip starts from its beginning (after a stinger or a silence, as the
// whole-book file plays it: the page's music begins when it enters, not that far into the clip).
// `grid`: the bar grid it enters on (barGrid; null: from the clip's beginning).
function startVoice(entry, delay = 0, grid = null) {
  const ctx = R.ctx;
  const src = ctx.createBufferSource();
  src.buffer = entry.buffer;
  src.loop = true;  // the clip is made to loop: it plays as long as the reader stays on the page
  const gain = ctx.createGain();
  gain.gain.setValueAtTime(0, ctx.currentTime);
  src.connect(gain).connect(R.bus);
  const at = ctx.currentTime + Math.max(0, delay);
  const offset = grid ? gridOffset(grid, at, entry.buffer.duration) : 0;
  src.start(at, offset);
  const clip = clipOf(entry.page);
  const v = { id: ++R.voiceSeq, run: R.run, page: entry.page, version: entry.version, src, gain,
              curve: null, curveStart: 0, curveDur: 0, hold: 0, target: 0, startedAt: performance.now(),
              clipStart: at - offset, bar: clip && entry.version === clip.version ? Number(clip.bar) || 0 : 0 };
  R.voices.push(v);
  return v;
}

function stopVoice(v) {
  try { v.src.stop(); } catch (err) { /* already stopped: nothing left to release */ }
  v.src.disconnect(); v.gain.disconnect();
}

function pruneVoices() {
  if (!R.ctx) return;
  const now = R.ctx.currentTime;
  R.voices = R.voices.filter((v) => {
    const done = v.target === 0 && now >= v.curveStart + v.curveDur + 0.02;
    if (done) stopVoice(v);
    return !done;
  });
}

function clipOf(page) {
  const clips = (R.value && R.value.clips) || {};
  return clips[String(page)] || null;
}

// How the music enters a planned page from the one before ({fade, enter?}), known from the plan
// before the page's clip is made.
function entranceOf(page) {
  const entrances = (R.value && R.value.entrances) || {};
  return entrances[String(page)] || null;
}

// Whether voice `v` plays `entry`, the clip of `page` in the run on screen.
function playsEntry(v, page, entry) { return v.run === R.run && v.page === page && v.version === entry.version; }

function bufferKey(page, version) { return R.run + '|' + page + '|' + version; }

function readyEntry(page) {
  const clip = clipOf(page);
  if (!clip) return null;
  const e = R.buffers.get(bufferKey(page, clip.version));
  return e && e.buffer ? e : null;
}

// Whether the page's clip exists and is on its way (fetching or decoding, or about to be): the
// music playing now goes on until it arrives rather than dropping to silence for that half second.
function arriving(page) {
  const clip = clipOf(page);
  return !!clip && !R.failed.has(bufferKey(page, clip.version));
}

// Whether the page's music is being made again (an edit): no clip of it in the value yet, while a
// voice of its earlier version plays on. That voice is held like one waiting for a clip on its way
// (up to HOLD_MS), so the new version crossfades from it rather than entering from silence.
function remaking(page) {
  const status = (R.value && R.value.status) || {};
  return !clipOf(page) && !!entranceOf(page) && !status.stopped &&
    R.voices.some((v) => v.run === R.run && v.page === page && !v.stinger && v.target === 1);
}

// How the music moves into `page` on a turn from `from`: the transition the director chose into
// a scene's first page (its entrance's enter: continue, crossfade, stinger, silence, cut) when the
// reader turns there from the page before, as the whole-book file plays it; null: the reader's own crossfade.
function moveInto(page, from, reason) {
  const e = entranceOf(page);
  return reason === 'turn' && e && e.enter && from === page - 1 ? e.enter : null;
}

// The seconds a plain crossfade into `page` lasts: on a turn from the page before, the cue sheet's
// (its entrance's fade: the scene crossfade where the two pages lie in different scenes and the
// director chose nothing, as the whole-book file plays it); on any other move the reader's own crossfade.
function plainFadeInto(page, from, reason) {
  const e = entranceOf(page);
  return reason === 'turn' && e && from === page - 1 && e.fade > 0 ? e.fade : R.fade;
}


// Make the page's music the only one heading for full gain. `reason` is logged with the fade;
// `from` is the page a turn came from.
function musicFor(page, turnAt, reason, from = null) {
  if (!R.ctx || !R.started) return;
  // Past the last page (R.ended) no page's music is wanted: every voice fades out, slowly.
  const entry = R.musicOn && !R.ended ? readyEntry(page) : null;
  if (entry && R.heldFor === page) R.heldFor = null;  // its music is here: a later remake may hold again
  const turned = reason === 'turn' && R.musicOn && !R.ended;
  let move = turned ? moveInto(page, from, reason) : null;
  let plain = turned ? plainFadeInto(page, from, reason) : R.fade;
  // A turn whose clip is still on its way keeps its move for when the clip lands (`late`: the
  // seconds since that turn), so the chosen transition is played, not a plain fade-in. Only that
  // clip's landing plays it: anything else in between (music off, the end, another page, book or run,
  // the clip failing) drops it, and the music comes back by the reader's own crossfade.
  const pending = R.pendingTurn;
  let late = null;
  const keeps = pending && pending.page === page && pending.run === R.run && R.musicOn && !R.ended &&
    (reason === 'clip-ready' || (!entry && (reason === 'update' || reason === 'hold-expired')));
  if (!keeps) R.pendingTurn = null;
  // (a page whose clip is not made yet keeps its planned move too, for when it is: every page with
  // a clip has an entrance)
  if (turned && !entry && entranceOf(page)) {
    R.pendingTurn = { page, run: R.run, move, plain, at: R.ctx.currentTime };
  } else if (reason === 'clip-ready' && entry && R.pendingTurn) {
    ({ move, plain } = R.pendingTurn);
    late = R.ctx.currentTime - R.pendingTurn.at;
    R.pendingTurn = null;
  }
  // a cut, a silence or a stinger lets the old scene go at the turn, whether or not the new clip is here
  const breaks = !!move && move.kind !== 'crossfade' && move.kind !== 'continue';
  const hold = !entry && !R.ended && R.musicOn && (arriving(page) || remaking(page)) && R.heldFor !== page && !breaks;
  const plan = fadesOf(move, plain);
  const delay = Math.max(0, plan.delay - (late || 0));  // a late clip waits out only what is left
  const fade = R.ended ? Math.max(END_FADE_S, R.fade) : plan.out;
  if (!hold) {
    clearTimeout(R.holdTimer);
    R.holdPage = null;
  } else if (R.holdPage !== page) {
    // a fetch that stalls must not keep another page's music on for good
    clearTimeout(R.holdTimer);
    R.holdPage = page;
    R.holdTimer = setTimeout(() => {
      R.holdPage = null;
      if (R.page !== page || readyEntry(page)) return;
      R.heldFor = page;
      musicFor(page, null, 'hold-expired');
    }, HOLD_MS);
  }
  const fades = [];
  let keep = null;
  const grid = entry ? barGrid(page, entry, plan) : null;
  const enters = grid ? gridOffset(grid, R.ctx.currentTime, entry.buffer.duration) : 0;
  const scale = entry ? steadyScaleInto(page, entry, plan, enters) : null;
  for (const v of R.voices) {
    // the stinger into this page plays out while the reader stays on it (a clip arriving, a new value)
    if (v.stinger && v.page === page && !R.ended && (!move || late !== null)) continue;
    if (entry && playsEntry(v, page, entry)) keep = v;
    else if (v.target !== 0 && !hold) fades.push(fadeVoice(R.ctx, v, 0, fade, 0, scale));
    // a chosen transition owns the change: music still dissolving from an earlier turn is gone
    // within its fade too (a silence is silent, a cut is clean)
    else if (move && late === null && v.curveStart + v.curveDur > R.ctx.currentTime + fade) {
      fades.push(fadeVoice(R.ctx, v, 0, fade));
    }
  }
  if (entry) {
    if (!keep) keep = startVoice(entry, delay, grid);
    if (keep.target !== 1) fades.push(fadeVoice(R.ctx, keep, 1, plan.in, delay, scale));
    if (R.firstAudibleAt === null && R.ctx.state === 'running') R.firstAudibleAt = performance.now();
  }
  const stinger = move && move.kind === 'stinger' && late === null ? playStinger(page, move) : null;
  // Very fast turns: at most two voices keep fading out; older ones finish in 120 ms (from a gain
  // that is already low, so no click), which bounds the number of live sources at three.
  const leaving = R.voices.filter((v) => v.target === 0 && v !== keep);
  for (const v of leaving.slice(0, Math.max(0, leaving.length - 2))) {
    if (v.curveStart + v.curveDur - R.ctx.currentTime > 0.15) fades.push(fadeVoice(R.ctx, v, 0, 0.12));
  }
  for (const f of fades) if (f.error) R.errors.push('fade (' + reason + '): ' + f.error);
  record(R.fades, { page, reason, turnAt, at: performance.now(), ctxTime: R.ctx.currentTime,
                    hadBuffer: !!entry, held: hold, count: fades.length, fades, move: move ? move.kind : null,
                    stinger, late: late === null ? null : Number(late.toFixed(3)), grid: !!grid });
  pruneVoices();
  updateChrome();
}

// The steady law's scale of a plain crossfade into `page` (crossfade.js soleVoiceSteadyScale, the
// whole-book file's law): from the one voice at full gain now, from where it plays, into the new clip
// from where it enters, over the fade; null (equal power) for anything else (a silence, a stinger, a
// voice already part-faded, two voices leaving, the page's clip already sounding).
function steadyScaleInto(page, entry, plan, offset) {
  if (R.voices.some((v) => playsEntry(v, page, entry))) return null;
  return soleVoiceSteadyScale(R.ctx, R.voices, entry.buffer, plan, offset);
}

// The bar grid `page`'s music enters on in a plain crossfade (crossfade.js barGridOf): the music
// heading for full gain now, when `page`'s clip is not already one of the voices.
function barGrid(page, entry, plan) {
  const clip = clipOf(page);
  if (!clip || R.voices.some((v) => playsEntry(v, page, entry))) return null;
  return barGridOf(R.ctx, R.voices, Number(clip.bar) || 0, plan);
}

// Play the stinger of `move` (the old scene's closing cadence) once, from now, at full gain: it
// is a voice of its own, so a turn away fades it like any other. Returns what was played, for the
// fade record; a stinger not yet decoded (or not made yet) is skipped and the new page still waits
// out its length, as the whole-book file does.
function playStinger(page, move) {
  const have = move.stinger ? R.stingers.get(move.stinger) : null;
  const at = R.ctx.currentTime;
  if (!have || !have.buffer) {
    if (move.stinger) fetchStinger(move.stinger, move.stinger_fallback);
    return { url: move.stinger || null, start: at, seconds: move.seconds, played: false };
  }
  R.voices.push(oneShotVoice(R.ctx, R.bus, have.buffer, { id: ++R.voiceSeq, run: R.run, page, version: 'stinger',
                                                          startedAt: performance.now() }, pruneVoices));
  return { url: move.stinger, start: at, seconds: have.buffer.duration, played: true };
}

// Fetch and decode a stinger (once per URL); the reader prefetches those of the pages around it.
// `fallback`: the same stinger as FLAC, for a browser that cannot decode the OGG (as a page's clip).
function fetchStinger(url, fallback) {
  const have = R.stingers.get(url);
  if (have) return have.promise;
  const entry = { buffer: null, error: null, promise: null, fallback: false };
  entry.promise = (async () => {
    try {
      ({ buffer: entry.buffer, fallback: entry.fallback } = await decodeEither(url, fallback, R.page));
    } catch (err) {
      entry.error = String(err && err.message || err);
      R.errors.push('stinger: ' + entry.error);
      R.stingers.delete(url);  // a later prefetch tries again
    }
    return entry;
  })();
  R.stingers.set(url, entry);
  return entry.promise;
}

async function fetchClip(page) {
  const clip = clipOf(page);
  if (!clip || !R.ctx) return null;
  const key = bufferKey(page, clip.version);
  const have = R.buffers.get(key);
  if (have) return have.promise;
  const run = R.run;
  const entry = { page, version: clip.version, run, buffer: null, requestedAt: performance.now(),
                  decodedAt: null, error: null, promise: null };
  const log = { page, version: clip.version, run, requestedAt: entry.requestedAt, decodedAt: null, ok: false };
  record(R.prefetchLog, log, 600);
  entry.promise = (async () => {
    try {
      const decoded = await decodeEither(clip.url, clip.fallback, page);
      entry.buffer = decoded.buffer;
      if (decoded.fallback) log.fallback = true;
      entry.decodedAt = log.decodedAt = performance.now();
      log.ok = true;
      R.failed.delete(key);
      // A clip that arrives for the page on screen starts now, with a fade (past the end of the
      // book no music is wanted: the end's slow fade goes on).
      if (R.run === run && R.page === page && R.started && !R.ended) musicFor(page, null, 'clip-ready');
      updateChrome();
      return entry;
    } catch (err) {
      entry.error = String(err && err.message || err);
      log.error = entry.error;
      R.buffers.delete(key);  // let a later prefetch try again
      R.failed.set(key, entry.error);
      R.errors.push(entry.error);
      // the music held for this clip gives way: the page says why it has none
      if (R.run === run && R.page === page) { musicFor(page, null, 'clip-failed'); updateChrome(); }
      return null;
    }
  })();
  R.buffers.set(key, entry);
  return entry.promise;
}

// {buffer, fallback} of the clip at `url`, or, when this browser cannot decode the OGG (older
// Safari), of the same clip as FLAC at `fallback` (lossless, so it still loops without a seam);
// throws when neither decodes (or on an HTTP error).
async function decodeEither(url, fallback, page) {
  let buffer = await fetchAndDecode(url, page);
  const fromFallback = !buffer && !!fallback;
  if (fromFallback) buffer = await fetchAndDecode(fallback, page);
  if (!buffer) throw new Error(cannotDecode());
  return { buffer, fallback: fromFallback };
}

// The decoded clip at `url`, or null when this browser cannot decode it (an HTTP error throws).
async function fetchAndDecode(url, page) {
  const res = await fetch(url);
  if (!res.ok) throw new Error('HTTP ' + res.status + ' for page ' + (page + 1));
  const bytes = await res.arrayBuffer();
  try {
    return await R.ctx.decodeAudioData(bytes);
  } catch (err) {
    R.errors.push('decode ' + url.split('?')[0].slice(-40) + ': ' + String(err && err.message || err));
    return null;
  }
}

// What to tell a reader whose browser decoded neither the clip nor its FLAC copy.
function cannotDecode() {
  return 'this browser could not decode the music file (OGG Vorbis, nor its FLAC copy); ' +
         'a current Chrome, Firefox, Edge or Safari plays it';
}

function neighbours(page) {
  const n = R.book ? R.book.pages.length : 0;
  return [page, page + 1, page - 1, page + 2].filter((p) => p >= 0 && p < n);
}

function prefetchAround(page) {
  ensureContext();
  if (!R.ctx) return;
  for (const p of neighbours(page)) fetchClip(p);
  // the stinger played on a turn into the next pages (it is a few seconds: small to keep)
  const wanted = new Map(neighbours(page).map((p) => entranceOf(p)).filter((e) => e && e.enter && e.enter.stinger)
    .map((e) => [e.enter.stinger, e.enter.stinger_fallback]));
  for (const [url, fallback] of wanted) fetchStinger(url, fallback);
  for (const [url, e] of R.stingers) if (!wanted.has(url) && e.buffer) R.stingers.delete(url);
  // Drop decoded clips far from the page on screen (a 20 s stereo clip is ~7 MB decoded).
  for (const [key, e] of R.buffers) {
    const playing = R.voices.some((v) => v.run === e.run && v.page === e.page && v.version === e.version);
    const current = clipOf(e.page);
    const stale = e.run !== R.run || !current || current.version !== e.version;
    if (!playing && e.buffer && (stale || Math.abs(e.page - page) > KEEP_AROUND)) R.buffers.delete(key);
  }
}

async function start(evTime) {
  R.startGestureAt = evTime || performance.now();
  const ctx = ensureContext();
  if (!ctx) { startEl.querySelector('.m2m-start-hint').textContent = 'This browser has no Web Audio; reading works, music does not.'; return; }
  R.started = true;
  startEl.hidden = true;
  root.classList.add('m2m-started');
  await ctx.resume();
  prefetchAround(R.page);
  musicFor(R.page, R.startGestureAt, 'start');
  root.focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------------
// Pages and the turn

function isSpread(p) { return p.width > p.height * 1.1; }

// On a phone held upright a two-page spread shown whole is a strip about 250 px tall whose words
// cannot be read, so there the reader shows a spread one half at a time, in reading order, as manga
// apps do: a turn first moves to the other half (the same page, so the music goes on), then to the
// next page. R.half is the half on screen (0 first, 1 second); it counts only while halves show.
const HALVES = window.matchMedia('(max-width: 640px) and (orientation: portrait)');
function halved(p) { return !!p && HALVES.matches && isSpread(p); }
// The side of the image that half `h` shows: a right-to-left book starts on the right.
function sideOf(h) { return (h === 0) === (R.dir === 'rtl') ? 'right' : 'left'; }
function viewSide(index, h) { return halved(R.book.pages[index]) ? sideOf(h) : null; }

function pageLayer(cls, page, half) {
  const d = document.createElement('div');
  d.className = 'm2m-layer ' + cls;
  if (page) {
    d.style.backgroundImage = 'url("' + page.image + '")';
    if (half) d.classList.add('m2m-half-' + half);
  }
  return d;
}

function fitBook(page, side) {
  if (!page) return;
  // the stage's content box: clientWidth counts its padding, and a book sized to that was squeezed
  // narrower by the flex layout while keeping its height (the page drawn ~2% too thin)
  const css = getComputedStyle(stage);
  const w = stage.clientWidth - parseFloat(css.paddingLeft) - parseFloat(css.paddingRight);
  const h = stage.clientHeight - parseFloat(css.paddingTop) - parseFloat(css.paddingBottom);
  const aspect = (side ? page.width / 2 : page.width) / page.height;
  root.style.setProperty('--m2m-aspect', aspect.toFixed(4));
  const bw = Math.max(50, Math.min(w, h * aspect)), bh = bw / aspect;
  bookEl.style.width = Math.floor(bw) + 'px';
  bookEl.style.height = Math.floor(bh) + 'px';
}

function showPage(index) {
  const page = R.book.pages[index];
  const side = viewSide(index, R.half);
  fitBook(page, side);
  bookEl.replaceChildren(pageLayer('m2m-current', page, side));
  bookEl.dataset.page = String(index);
  bookEl.dataset.side = side || 'whole';
  showHalves(side);
}

// Which half of the spread is on screen (a phone shows one at a time): the lit dot's side. Hidden,
// the dots keep their room, so the controls beside them stay put from a spread to a single page.
function showHalves(side) {
  halvesEl.classList.toggle('m2m-off', !side);
  halvesEl.dataset.side = side || '';
  halvesEl.title = side ? 'The ' + side + ' half of this spread' : '';
}

// To the other half of the spread on screen: the image slides across, and the music stays.
function turnHalf(half, how, evTime) {
  finishAnimation();
  const t0 = evTime || performance.now();
  const from = sideOf(R.half);
  R.half = half;
  record(R.turns, { from: R.page, to: R.page, half, how, at: t0, handledAt: performance.now() });
  showPage(R.page);
  const layer = bookEl.firstElementChild;
  if (!reducedMotion() && layer && layer.animate) {
    const at = (side) => ({ backgroundPosition: side === 'left' ? '0% 0%' : '100% 0%' });
    const anim = layer.animate([at(from), at(sideOf(half))], { duration: 320, easing: 'cubic-bezier(.35,.05,.25,1)' });
    R.anim = anim;
    anim.onfinish = () => { if (R.anim === anim) { R.anim = null; showPage(R.page); } };
  }
  updateChrome();
}

function preloadImages(index) {
  for (const p of neighbours(index)) {
    const img = new Image();
    img.decoding = 'async';
    img.src = R.book.pages[p].image;
  }
}

function finishAnimation() {
  if (R.anim) { const a = R.anim; R.anim = null; a.cancel(); showPage(R.page); }
}

// A spread turns at the spine: the half nearest the reader's next page lifts and lands on the other
// half. Right-to-left books turn their left half over to the right going forward; left-to-right
// books the opposite. Single pages turn as one leaf around their outer edge.
function animateTurn(from, to, sideA, sideB) {
  finishAnimation();
  const a = R.book.pages[from], b = R.book.pages[to];
  if (reducedMotion() || !bookEl.animate) { showPage(to); return; }
  const forward = to > from;
  const leftMoves = forward === (R.dir === 'rtl');   // the leaf starts on the left half
  fitBook(b, sideB);
  const layers = [];
  let leaf, frames;
  if (!sideA && !sideB && isSpread(a) && isSpread(b)) {
    const stay = pageLayer('m2m-static', a, leftMoves ? 'right' : 'left');
    leaf = document.createElement('div');
    leaf.className = 'm2m-leaf ' + (leftMoves ? 'm2m-leaf-left' : 'm2m-leaf-right');
    leaf.append(pageLayer('m2m-face m2m-front', a, leftMoves ? 'left' : 'right'),
                pageLayer('m2m-face m2m-back', b, leftMoves ? 'right' : 'left'));
    layers.push(pageLayer('m2m-under', b), stay, leaf);
    frames = [{ transform: 'rotateY(0deg)' }, { transform: 'rotateY(' + (leftMoves ? 180 : -180) + 'deg)' }];
  } else {
    // Forward: the current page swings away; backward: the previous page swings back on top.
    leaf = document.createElement('div');
    leaf.className = 'm2m-leaf m2m-leaf-full ' + (leftMoves ? 'm2m-hinge-right' : 'm2m-hinge-left');
    leaf.append(forward ? pageLayer('m2m-face m2m-front', a, sideA) : pageLayer('m2m-face m2m-front', b, sideB),
                pageLayer('m2m-face m2m-back m2m-paper', null));
    layers.push(forward ? pageLayer('m2m-under', b, sideB) : pageLayer('m2m-under', a, sideA), leaf);
    const end = 'rotateY(' + (leftMoves ? 180 : -180) + 'deg)';
    frames = forward ? [{ transform: 'rotateY(0deg)' }, { transform: end }]
                     : [{ transform: end }, { transform: 'rotateY(0deg)' }];
  }
  const shade = document.createElement('div');
  shade.className = 'm2m-shade';
  leaf.append(shade);
  bookEl.replaceChildren(...layers);
  const anim = leaf.animate(frames, { duration: TURN_MS, easing: 'cubic-bezier(.35,.05,.25,1)' });
  shade.animate([{ opacity: 0 }, { opacity: 0.45, offset: 0.5 }, { opacity: 0 }], { duration: TURN_MS });
  R.anim = anim;
  anim.onfinish = () => { if (R.anim === anim) { R.anim = null; showPage(R.page); } };
}

// To page `target`, on its half `half` when halves show (going back lands on the second half).
function go(target, how, evTime, half = 0) {
  if (!R.book) return;
  const t0 = evTime || performance.now();
  const n = R.book.pages.length;
  target = Math.max(0, Math.min(n - 1, target));
  if (R.ended && target === R.page) { endBook(false, t0); return; }
  if (target === R.page) return;
  leaveEnd();
  const from = R.page;
  const sideA = viewSide(from, R.half);
  R.page = target;
  R.heldFor = null;
  R.half = half;
  showHalves(viewSide(target, half));  // at the turn, not when its animation ends
  record(R.turns, { from, to: target, how, at: t0, handledAt: performance.now() });
  musicFor(target, t0, 'turn', from); // first: the fade must start within 50 ms of the input
  animateTurn(from, target, sideA, viewSide(target, half));
  prefetchAround(target);
  preloadImages(target);
  updateChrome();
  notifyServer();
}

function next(how, t) {
  if (!R.book) return;
  if (halved(R.book.pages[R.page]) && R.half === 0) turnHalf(1, how, t);
  else if (R.page === R.book.pages.length - 1) endBook(true, t);
  else go(R.page + 1, how, t, 0);
}
function prev(how, t) {
  if (!R.book) return;
  if (R.ended) endBook(false, t);
  else if (halved(R.book.pages[R.page]) && R.half === 1) turnHalf(0, how, t);
  else go(R.page - 1, how, t, 1);
}

// A turn past the last page ends the book: a card says so over the last page and the music fades
// out (a reader who stops there is not left with one page looping for ever); turning back, the
// slider or "read again" brings the music back.
function endBook(on, t) {
  if (R.ended === on) return;
  setEnded(on);
  musicFor(R.page, t || performance.now(), on ? 'end' : 'back');
}
// Without music: a turn or a new book leaves the end, and sets its own music.
function leaveEnd() { setEnded(false); }
function setEnded(on) {
  R.ended = on;
  endEl.hidden = !on;
}
// On screen "left" means forward in a right-to-left book.
function turnLeft(how, t) { R.dir === 'rtl' ? next(how, t) : prev(how, t); }
function turnRight(how, t) { R.dir === 'rtl' ? prev(how, t) : next(how, t); }

function notifyServer() {
  // The server renders the page on screen and the next two first; tell it where the reader is,
  // coalescing a burst of turns into one message.
  clearTimeout(R.notifyTimer);
  R.notifyTimer = setTimeout(sendTurn, 120);
}

// The boxes the reader is typing in: a turn's answer leaves their text alone.
function editing() {
  const at = document.activeElement;
  return ['caption', 'directive', 'theme-voice', 'theme-motif', 'transition-kind', 'transition-seconds',
    'transition-why'].filter((box) => at && at.closest && at.closest('#m2m-' + box));
}

function shownDigest(attr) {
  const el = document.querySelector('[data-' + attr + ']');
  return el ? el.getAttribute('data-' + attr) : '';
}

function sendTurn() {
  R.lastTurnAt = performance.now();
  trigger('turn', { page: R.page, seq: ++R.turnSeq, said: shownDigest('m2m-said'), editing: editing() });
  schedulePull(TURN_ANSWER_MS);
}

// The page catches up with the server by asking, not by trusting every event's answer to arrive:
// an answer can be lost on Gradio's event stream or overtaken by an older one on a busy server. The
// pull is a plain request (a gr.HTML server function) that returns the reader's value as the server
// would send it now, with its version (applied when newer than the one shown), and the digests of
// the side panels of the page on screen and of the status line: where the page's differ, it asks
// for them again with a turn. It also carries the page on screen, so the music follows the reader
// even if a turn never reached the server, and says when the generation stalled (the answer that
// should have started it was lost), which the turn's answer restarts. A lost answer costs one pull.
async function pull() {
  clearTimeout(R.pullTimer);
  R.pullTimer = null;
  if (!R.token || typeof server === 'undefined' || !server.reader_state) return;
  if (R.pulling) { R.pullAgain = true; return; }
  R.pulling = true;
  const sentAt = performance.now();
  let answer = null;
  try {
    answer = await server.reader_state({ token: R.token, page: R.page, seq: R.turnSeq });
  } catch (err) {
    R.errors.push('pull: ' + String(err && err.message || err));  // the next pull tries again
  }
  R.pulling = false;
  R.pulls += 1;
  const entry = { at: sentAt, ms: Math.round(performance.now() - sentAt), known: !!(answer && answer.known) };
  if (answer && answer.known) {
    entry.version = answer.value ? answer.value.version : null;
    entry.applied = !!answer.value && applyValue(answer.value);
    R.working = !!answer.working;
    entry.behind = [answer.page !== R.page && 'page', shownDigest('m2m-digest') !== answer.panels && 'panels',
                    shownDigest('m2m-said') !== answer.said && 'status', answer.stalled && 'stalled'].filter(Boolean);
    // An answer may be on its way (a clip's, a turn's): ask again only when the pull before found the
    // page behind in the same way too (the digests themselves change as clips land), or the generation
    // stalled, and no turn was sent just now.
    const gap = JSON.stringify(entry.behind);
    const again = entry.behind.length && (gap === R.lastGap || answer.stalled);
    R.lastGap = entry.behind.length ? gap : '';
    if (again && performance.now() - R.lastTurnAt > TURN_ANSWER_MS) {
      R.resyncs += 1;
      entry.resync = true;
      sendTurn();
    }
  } else if (answer && !answer.known && R.book) {
    // the server forgot this session (an hour unseen): a turn hands it back
    sendTurn();
  }
  record(R.pullLog, entry, 200);
  if (R.pullAgain) { R.pullAgain = false; pull(); return; }
  if (!R.pullTimer) schedulePull();
}

function schedulePull(ms) {
  clearTimeout(R.pullTimer);
  // quick while music is being made, after a save or a settings change, or when the page was behind
  const quick = R.working || R.lastGap || performance.now() < R.activeUntil;
  R.pullTimer = setTimeout(pull, ms ?? (quick ? PULL_MS : IDLE_PULL_MS));
}

// A save or a settings change is on its way: pull soon, and often for a while.
function wake() {
  R.activeUntil = performance.now() + WAKE_MS;
  schedulePull(800);
}

// ---------------------------------------------------------------------------------------------
// Chrome: counter, slider, engine label, status, media session

function updateChrome() {
  const n = R.book ? R.book.pages.length : 0;
  root.dataset.page = String(R.page);
  counter.textContent = n ? (R.page + 1) + ' / ' + n : '–';
  slider.max = String(Math.max(1, n));
  if (document.activeElement !== slider) slider.value = String(R.page + 1);
  const clip = clipOf(R.page);
  const status = (R.value && R.value.status) || {};
  let note = '';
  if (!R.musicOn || R.ended) note = '';
  else if (!clip && status.message) note = status.message;
  else if (!status.planned) note = 'Planning the music (scenes, emotions, directives, captions)…';
  else if (!clip) note = 'Composing the music for this page… it starts the moment it is ready.';
  else if (R.started && !readyEntry(R.page) && R.failed.has(bufferKey(R.page, clip.version))) {
    note = 'This page’s music could not be played: ' + R.failed.get(bufferKey(R.page, clip.version)) + '.';
  } else if (R.started && !readyEntry(R.page)) note = 'Loading this page’s music…';
  if (note !== noteEl.textContent) {
    record(R.notes, { page: R.page, text: note, at: performance.now() }, 200);
  }
  noteEl.textContent = note;
  noteEl.hidden = !note || !R.book;
  engineEl.textContent = clip ? '♪ ' + clip.engine
    : (status.stopped ? '♪ stopped' : (status.planned ? '♪ composing…' : '♪ planning…'));
  engineEl.title = clip ? 'Music for page ' + (R.page + 1) + ' made by ' + clip.engine + ' (' + clip.seconds + ' s loop)' : '';
  const total = status.total || 0;
  progressFill.style.width = total ? (100 * (status.ready || 0) / total).toFixed(1) + '%' : '0%';
  root.classList.toggle('m2m-generating', total > 0 && (status.ready || 0) < total);
  musicBtn.textContent = R.musicOn ? 'music on' : 'music off';
  musicBtn.setAttribute('aria-pressed', String(R.musicOn));
  muteBtn.innerHTML = R.muted ? ICON_MUTED : ICON_SOUND;
  muteBtn.setAttribute('aria-pressed', String(R.muted));
  muteBtn.title = R.muted ? 'Unmute' : 'Mute';  // the tooltip says what a click does
  if ('mediaSession' in navigator && window.MediaMetadata && R.book && R.started) {
    navigator.mediaSession.metadata = new MediaMetadata({
      title: R.book.title + ' — page ' + (R.page + 1),
      artist: 'm2m · ' + (clip ? clip.engine : 'composing'),
      album: R.book.title,
    });
  }
}

function setupMediaSession() {
  if (!('mediaSession' in navigator)) return;
  try {
    navigator.mediaSession.setActionHandler('nexttrack', () => next('media'));
    navigator.mediaSession.setActionHandler('previoustrack', () => prev('media'));
  } catch (err) { R.errors.push('media session: ' + err); }
}

// ---------------------------------------------------------------------------------------------
// New data from the server

function unchanged(a, b) {
  // entrances too: a stinger made after the step's clips landed arrives in them alone, and must be prefetched
  return a.crossfade_s === b.crossfade_s &&
    JSON.stringify([a.clips, a.entrances, a.status]) === JSON.stringify([b.clips, b.entrances, b.status]);
}

// Returns whether the value was applied: one older than the value shown (an answer that arrived
// late, after a newer one or a pull) is dropped.
function applyValue(value) {
  if (value && typeof value === 'object' && value.version) {
    if (value.version < R.version) { R.stale += 1; return false; }
    R.version = value.version;
    if (value.sync && value.sync !== R.token) { R.token = value.sync; schedulePull(); }
  }
  if (!value || typeof value !== 'object' || !value.book) {
    R.value = value || null;
    $('.m2m-empty-book').hidden = false;
    return true;
  }
  $('.m2m-empty-book').hidden = true;
  const newBook = !R.book || R.book.id !== value.book.id || R.book.pages.length !== value.book.pages.length;
  const newRun = R.run !== value.run;
  // most pulls bring what is shown already: nothing to fetch, fade or redraw
  const same = !newBook && !newRun && R.value && unchanged(R.value, value);
  R.value = value;
  if (same) return true;
  R.fade = Math.max(0.05, Number(value.crossfade_s) || 1.5);
  if (newBook) {
    R.book = value.book;
    R.dir = value.book.direction === 'ltr' ? 'ltr' : 'rtl';
    root.dataset.dir = R.dir;
    slider.style.direction = R.dir;  // dragging toward the next page moves the way the pages turn
    R.page = Math.max(0, Math.min(value.book.pages.length - 1, Number(value.start_page) || 0));
    R.half = 0;
    leaveEnd();
    finishAnimation();
    showPage(R.page);
    preloadImages(R.page);
  }
  R.run = value.run;
  if (newRun || newBook) {
    for (const key of [...R.buffers.keys()]) if (!key.startsWith(R.run + '|')) R.buffers.delete(key);
  }
  prefetchAround(R.page);
  // The page's clip may have changed (a new book, another condition, an edited caption): fade to it
  // if it is decoded already; otherwise fetchClip's arrival starts it.
  if (R.started) musicFor(R.page, null, newBook ? 'book' : newRun ? 'run' : 'update');
  root.dataset.ready = '1';
  updateChrome();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Input

function typing(target) {
  const t = target && target.tagName;
  return t === 'INPUT' || t === 'TEXTAREA' || t === 'SELECT' || (target && target.isContentEditable);
}

function visible() { return root.offsetParent !== null; }

function onKey(e) {
  if (!R.book || !visible() || typing(e.target) || e.altKey || e.ctrlKey || e.metaKey) return;
  const t = e.timeStamp;
  let handled = true;
  if (e.key === 'ArrowLeft') turnLeft('key', t);
  else if (e.key === 'ArrowRight') turnRight('key', t);
  else if (e.key === ' ' || e.key === 'PageDown') (e.shiftKey ? prev : next)('key', t);
  else if (e.key === 'PageUp') prev('key', t);
  else if (e.key === 'Home') go(0, 'key', t);
  else if (e.key === 'End') go(R.book.pages.length - 1, 'key', t);
  else handled = false;
  if (handled) e.preventDefault();
}
document.addEventListener('keydown', onKey);

let swipe = null, swipedAt = 0;
stage.addEventListener('pointerdown', (e) => { swipe = { x: e.clientX, y: e.clientY, id: e.pointerId }; });
stage.addEventListener('pointerup', (e) => {
  if (!swipe || swipe.id !== e.pointerId) return;
  const dx = e.clientX - swipe.x, dy = e.clientY - swipe.y;
  swipe = null;
  if (Math.abs(dx) > 40 && Math.abs(dx) > 1.5 * Math.abs(dy)) {
    swipedAt = performance.now();
    // A finger pulling the page rightward turns it the way a right-to-left book turns forward.
    (dx > 0 ? turnLeft : turnRight)('swipe', e.timeStamp);
  }
});
stage.addEventListener('pointercancel', () => { swipe = null; });

function zone(fn) {
  return (e) => { if (performance.now() - swipedAt > 350) fn('click', e.timeStamp); };
}
$('.m2m-zone-left').addEventListener('click', zone(turnLeft));
$('.m2m-zone-right').addEventListener('click', zone(turnRight));
$('.m2m-left').addEventListener('click', (e) => turnLeft('button', e.timeStamp));
$('.m2m-right').addEventListener('click', (e) => turnRight('button', e.timeStamp));
slider.addEventListener('input', () => { counter.textContent = slider.value + ' / ' + slider.max; });
slider.addEventListener('change', (e) => { go(Number(slider.value) - 1, 'slider', e.timeStamp); slider.blur(); });
$('.m2m-start-btn').addEventListener('click', (e) => start(e.timeStamp));
$('.m2m-end-btn').addEventListener('click', (e) => go(0, 'again', e.timeStamp));
musicBtn.addEventListener('click', () => {
  R.musicOn = !R.musicOn;
  setBus();
  if (R.started) musicFor(R.page, null, R.musicOn ? 'music-on' : 'music-off');
  updateChrome();
});
muteBtn.addEventListener('click', () => { R.muted = !R.muted; setBus(); updateChrome(); });
volumeEl.addEventListener('input', () => { R.volume = Number(volumeEl.value) / 100; setBus(); });

// On a wide screen the reader fills the window below whatever sits above it (title, tabs) and above
// Gradio's footer, so the page never scrolls; the side column takes the same height (app.css).
let belowReader = null;  // px of page under the reader (Gradio's footer, margins), measured when it overflows
function fitHeight() {
  if (!visible()) return;
  const doc = document.documentElement;
  if (window.matchMedia('(max-width: 720px)').matches) { doc.style.removeProperty('--m2m-reader-height'); return; }
  const rect = root.getBoundingClientRect();
  // Only an overflowing page tells how much sits below the reader; until then a guess (a slight gap).
  if (doc.scrollHeight > window.innerHeight + 1) belowReader = doc.scrollHeight - (rect.bottom + window.scrollY);
  const h = Math.max(320, Math.floor(window.innerHeight - (rect.top + window.scrollY) - (belowReader ?? 64)));
  if (doc.style.getPropertyValue('--m2m-reader-height') !== h + 'px') doc.style.setProperty('--m2m-reader-height', h + 'px');
}
window.addEventListener('resize', fitHeight);
// showPage, not only fitBook: turning the phone switches between halves and whole spreads
new ResizeObserver(() => { fitHeight(); if (R.book && !R.anim) showPage(R.page); }).observe(stage);
setInterval(pruneVoices, 250);
setupMediaSession();
// A tab in the background has its timers slowed: back on screen, catch up at once.
document.addEventListener('visibilitychange', () => { if (!document.hidden) pull(); });

// ---------------------------------------------------------------------------------------------
// A window on the audio state, for tests and benchmarks

function state() {
  const now = R.ctx ? R.ctx.currentTime : 0;
  const voices = R.voices.map((v) => ({ id: v.id, run: v.run, page: v.page, version: v.version,
    gain: Number(gainAt(v, now).toFixed(4)), target: v.target, stinger: !!v.stinger,
    clipStart: v.clipStart === undefined ? null : Number(v.clipStart.toFixed(4)), bar: v.bar || 0,
    // still on its fade's curve: the steady law can take a voice past 1 before its fade ends
    fading: !!v.curve && now < v.curveStart + v.curveDur }));
  const audible = voices.filter((v) => v.gain > 0.001);
  const heading = voices.filter((v) => v.target === 1 && !v.stinger);
  return {
    page: R.page, pages: R.book ? R.book.pages.length : 0, direction: R.dir, run: R.run, ended: R.ended,
    side: R.book ? viewSide(R.page, R.half) : null,  // the half on screen ('right'/'left'), null: the whole page
    started: R.started, ctxState: R.ctx ? R.ctx.state : 'none', ctxTime: now,
    musicOn: R.musicOn, muted: R.muted, volume: R.volume, crossfade: R.fade,
    busGain: R.bus ? R.bus.gain.value : 0,
    voices, audible: audible.length, playingPage: heading.length ? heading[0].page : null,
    stingers: [...R.stingers.entries()].filter(([, e]) => e.buffer).map(([url]) => url),
    stingersFromFlac: [...R.stingers.entries()].filter(([, e]) => e.buffer && e.fallback).map(([url]) => url),
    pendingTurn: R.pendingTurn ? { page: R.pendingTurn.page, move: R.pendingTurn.move ? R.pendingTurn.move.kind : null } : null,
    decoded: [...R.buffers.values()].filter((e) => e.buffer && e.run === R.run).map((e) => e.page).sort((a, b) => a - b),
    clips: R.value ? Object.fromEntries(Object.entries(R.value.clips || {}).map(([k, c]) => [k, c.version])) : {},
    enters: R.value ? Object.fromEntries(Object.entries(R.value.entrances || {}).filter(([, e]) => e.enter).map(([k, e]) => [k, e.enter])) : {},
    status: R.value ? R.value.status : null,
    prefetch: R.prefetchLog.slice(), turns: R.turns.slice(), fades: R.fades.slice(), errors: R.errors.slice(),
    notes: R.notes.slice(),
    startGestureAt: R.startGestureAt, firstAudibleAt: R.firstAudibleAt, animating: !!R.anim,
    version: R.version, pulls: R.pulls, resyncs: R.resyncs, stale: R.stale, pullLog: R.pullLog.slice(),
    now: performance.now(),
  };
}

// suspend/resume: the page hides the reader (the study tab) and shows it again; the audio clock
// stops, so every voice goes on from where it was.
window.m2mReader = { state, next: () => next('api'), prev: () => prev('api'), go: (p) => go(p, 'api'),
                     start: () => start(), element: root, wake, pull,
                     suspend: () => { if (R.ctx && R.ctx.state === 'running') R.ctx.suspend(); },
                     resume: () => { if (R.started && R.ctx && R.ctx.state === 'suspended') R.ctx.resume(); } };

if (props.reader_css && !document.getElementById('m2m-reader-css')) {
  const style = document.createElement('style');
  style.id = 'm2m-reader-css';
  style.textContent = props.reader_css;
  document.head.appendChild(style);
}
watch('value', () => applyValue(props.value));
applyValue(props.value);
fitHeight();
requestAnimationFrame(fitHeight);  // once Gradio has laid out the rest of the page
