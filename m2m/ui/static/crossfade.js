// Equal-power fades on Web Audio GainNodes and the moves they make at a scene change, shared by
// the reader (reader.js) and the listening study (study.js): both are loaded after this file in
// the same js_on_load scope.
// A voice is {gain: GainNode, hold, target, curve, curveStart, curveDur}.

const FADE_EPS = 0.003;       // s: curves start just after the hold point (no overlapping events)
const FADE_POINTS = 96;
const HALF_PI = Math.PI / 2;

const CUT_S = 0.05;         // a cut at a scene change still fades this long: an instant switch clicks
const SILENCE_ENTRY_S = 0.3; // after a silence or a stinger the new scene enters over this long (as the whole file)

// The fades of a move (a page's `enter` as the server sends it; null: a plain crossfade of
// `plain` seconds): the old music's fade-out, the new music's fade-in, and the silence between
// them (a silence: the old fades out, the new waits out the silence and enters over 0.3 s; a
// stinger: the old fades out under the stinger, the new enters over 0.3 s when the stinger ends).
function fadesOf(move, plain) {
  if (!move) return { out: plain, in: plain, delay: 0 };
  if (move.kind === 'silence') return { out: move.fade, in: SILENCE_ENTRY_S, delay: move.fade + move.silence };
  if (move.kind === 'stinger') return { out: move.fade, in: SILENCE_ENTRY_S, delay: move.seconds };
  const seconds = Math.max(CUT_S, move.fade);
  return { out: seconds, in: seconds, delay: 0 };
}

// A voice that plays `buffer` once, from now at full gain, into `bus` (a stinger: the old scene's
// closing cadence); `fields` are the player's own. Once it has rung out it is silent and done, and
// `onDone` runs (the player's prune then stops and disconnects it).
function oneShotVoice(ctx, bus, buffer, fields, onDone = null) {
  const src = ctx.createBufferSource();
  src.buffer = buffer;
  const gain = ctx.createGain();
  gain.gain.setValueAtTime(1, ctx.currentTime);
  src.connect(gain).connect(bus);
  src.start(ctx.currentTime);
  const v = { ...fields, src, gain, curve: null, curveStart: 0, curveDur: 0, hold: 1, target: 1, stinger: true };
  src.onended = () => {
    v.hold = 0; v.curve = null; v.target = 0; v.curveStart = 0; v.curveDur = 0;
    if (onDone) onDone();
  };
  return v;
}

function gainAt(v, t) {
  // The voice's gain at ctx time t, from the curve we scheduled (the same linear interpolation the
  // spec uses for setValueCurveAtTime), so a new fade can start exactly where the old one is.
  if (!v.curve || t <= v.curveStart) return v.hold;
  const x = (t - v.curveStart) / v.curveDur;
  if (x >= 1) return v.curve[v.curve.length - 1];
  const f = x * (v.curve.length - 1), i = Math.floor(f);
  return v.curve[i] + (v.curve[i + 1] - v.curve[i]) * (f - i);
}

// How alike two stretches of `seconds` are (normalised correlation r, clipped to [0, 1]; 0 for silence): `a` from
// `offsetA` s (wrapping round its end: a looping clip), `b` from `offsetB` s. Every few samples
// suffice for a level law and keep it well under a millisecond on a page turn.
function correlationAt(a, offsetA, b, offsetB, seconds) {
  const rate = a.sampleRate, n = Math.floor(seconds * rate);
  if (!n || b.sampleRate !== rate || a.length === 0) return 0;
  const step = Math.max(1, Math.floor(n / 16000));
  const startA = Math.floor(offsetA * rate), startB = Math.floor(offsetB * rate);
  let xy = 0, xx = 0, yy = 0;
  for (let ch = 0; ch < Math.min(a.numberOfChannels, b.numberOfChannels); ch++) {
    const x = a.getChannelData(ch), y = b.getChannelData(ch);
    for (let i = 0; i < n && startB + i < y.length; i += step) {
      const u = x[(startA + i) % x.length], w = y[startB + i];
      xy += u * w; xx += u * u; yy += w * w;
    }
  }
  return xx > 0 && yy > 0 ? Math.min(1, Math.max(0, xy / Math.sqrt(xx * yy))) : 0;
}

// The r a plain crossfade of `plan` into `buffer` follows (fadeVoice): that of the one voice
// sounding at full gain, where it is now in its looping clip, against `buffer` from `offset` s (where
// it enters); 0 (equal power) for a silence's or a stinger's move, a stinger, a voice mid-fade, or
// several sounding.
function soleVoiceAlikeness(ctx, voices, buffer, plan, offset = 0) {
  if (!buffer || plan.delay || plan.in !== plan.out) return 0;
  const now = ctx.currentTime, sounding = voices.filter((v) => v.target !== 0);
  if (sounding.length !== 1 || sounding[0].stinger || gainAt(sounding[0], now) < 0.98) return 0;
  const old = sounding[0], clip = old.src.buffer;
  if (!clip || now < old.clipStart) return 0;
  return correlationAt(clip, (now - old.clipStart) % clip.duration, buffer, offset, plan.in);
}

// The bar grid a clip whose bars last `bar` s enters on in a plain crossfade of `plan`: that of the
// voice heading for full gain now, when its clip's bars are as long (the pages of a scene share tempo
// and metre), so while the two overlap their beats fall together rather than a fraction of a beat
// apart; null (the clip from its beginning) otherwise. {origin: the audio clock time the old clip
// started from its beginning, loop: its length, bar}, in seconds.
function barGridOf(ctx, voices, bar, plan) {
  if (!bar || plan.delay || plan.in !== plan.out) return null;
  const old = voices.find((v) => v.target === 1 && !v.stinger);
  if (!old || !old.bar || Math.abs(old.bar - bar) > 1e-3 || ctx.currentTime < old.clipStart) return null;
  return { origin: old.clipStart, loop: old.src.buffer.duration, bar };
}

// Seconds into a clip of `duration` that puts it on `grid` at audio clock time `at`: where the old
// clip is then, within its bar.
function gridOffset(grid, at, duration) {
  return Math.min(((at - grid.origin) % grid.loop) % grid.bar, duration - 1e-3);
}

// `delay`: seconds to hold the gain before the fade starts (a silence before a scene's music).
// `r`: the correlation of the voice with the one fading the other way (correlationAt): the
// equal-power law is scaled by 1 / sqrt(1 + 2 r sin cos) so two alike clips (a scene's pages share
// key, tempo, chords) do not swell by up to 3 dB in the middle of their crossfade. The whole-book
// file's mixer holds the sum more closely (m2m/soundtrack.py steady_crossfade_gains: both powers
// and their cross power by the quarter second, opposed music included); between equally loud
// clips of r >= 0 the two laws agree.
// Never throws: a page turn's bookkeeping (which voice is wanted, the fade log) goes on whatever
// the browser's automation timeline refuses; the returned record says so in `error`.
function fadeVoice(ctx, v, to, seconds, delay = 0, r = 0) {
  const p = v.gain.gain, now = ctx.currentTime, at = now + FADE_EPS + Math.max(0, delay);
  const estimate = gainAt(v, now);
  const g0 = Number.isFinite(estimate) ? Math.min(1, Math.max(0, estimate)) : (to > 0 ? 0 : 1);
  // Equal power: in = sin(theta), out = cos(theta). Start theta where the gain is now and keep the
  // rate of the full fade, so a half-faded voice finishes in half the time.
  // Under the correlation law both voices follow one theta from 0 (fadeVoice is given r only for a
  // voice at full gain and one entering from silence): a head start of the fading one's theta
  // would unbalance the sum the law holds steady.
  const th0 = r > 0 ? 0 : to > 0 ? Math.asin(g0) : Math.acos(g0);
  const dur = Math.max(0.02, seconds * (HALF_PI - th0) / HALF_PI);
  const curve = new Float32Array(FADE_POINTS);
  for (let i = 0; i < FADE_POINTS; i++) {
    const th = th0 + (HALF_PI - th0) * (i / (FADE_POINTS - 1));
    curve[i] = (to > 0 ? Math.sin(th) : Math.cos(th)) / Math.sqrt(1 + 2 * r * Math.sin(th) * Math.cos(th));
  }
  curve[0] = g0; curve[FADE_POINTS - 1] = to;
  v.hold = g0; v.target = to; v.curveStart = at; v.curveDur = dur;
  const done = { from: g0, to, start: at, seconds: dur, r: Number(r.toFixed(3)) };
  try {
    // Hold the gain where it is. cancelAndHoldAtTime keeps a running curve's current value; where
    // it is missing, cancelScheduledValues plus setValueAtTime does the same from our own estimate.
    if (p.cancelAndHoldAtTime) p.cancelAndHoldAtTime(now); else p.cancelScheduledValues(now);
    p.setValueAtTime(g0, now);
    p.setValueCurveAtTime(curve, at, dur);
    v.curve = curve;
  } catch (err) {
    // An event the cancel left behind overlaps the curve: clear the whole timeline (nothing earlier
    // than now matters any more) and ramp from our estimate instead.
    done.error = String(err && err.message || err);
    v.curve = Float32Array.of(g0, to);
    try {
      p.cancelScheduledValues(0);
      p.setValueAtTime(g0, now);
      p.linearRampToValueAtTime(to, at + dur);
    } catch (again) {
      p.value = to;  // the last resort: a step, but the voice ends where it is wanted
      v.curve = null; v.hold = to;
      done.error += '; ' + String(again && again.message || again);
    }
  }
  return done;
}
