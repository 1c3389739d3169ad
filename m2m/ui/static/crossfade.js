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

// The steady law's measures, as the whole-book mixer has them (m2m/soundtrack.py
// CORRELATION_SECONDS, STEADY_MAX_DB): the two clips' powers by the quarter second (alike pages are
// alike by the moment), and a scale of at most 6 dB either way (where the two nearly cancel, no gain
// brings back what is not there).
const STEADY_SECONDS = 0.25;
const STEADY_LIMIT = Math.pow(10, 6 / 20);
// Samples read per crossfade, all channels together: every few samples suffice for a level law and
// keep it well under a millisecond on a page turn.
const STEADY_SAMPLES = 16000;

// np.interp: `ys` at `x` on the straight lines between the points (`xs` rising), constant beyond the
// first and the last.
function interpAt(xs, ys, x) {
  if (x <= xs[0]) return ys[0];
  for (let k = 1; k < xs.length; k++) {
    if (x <= xs[k]) return ys[k - 1] + (ys[k] - ys[k - 1]) * (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
  }
  return ys[ys.length - 1];
}

// soundtrack.py local_powers over `n` samples, read every `step`: for each of `count` equal stretches,
// the mean square of `a` (from sample `startA`), of `b` (from `startB`) and their mean product, over
// all the channels both have, and the stretch's middle (in samples). Both clips loop as they play, so
// both are read round their ends.
function stretchPowers(a, startA, b, startB, n, count, step) {
  const channels = Math.min(a.numberOfChannels, b.numberOfChannels);
  const old = new Float64Array(count), neu = new Float64Array(count), cross = new Float64Array(count);
  const middles = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const lo = Math.floor(k * n / count), hi = Math.floor((k + 1) * n / count);
    let xx = 0, yy = 0, xy = 0, m = 0;
    for (let ch = 0; ch < channels; ch++) {
      const x = a.getChannelData(ch), y = b.getChannelData(ch);
      for (let i = lo; i < hi; i += step, m++) {
        const u = x[(startA + i) % x.length], w = y[(startB + i) % y.length];
        xx += u * u; yy += w * w; xy += u * w;
      }
    }
    old[k] = m ? xx / m : 0; neu[k] = m ? yy / m : 0; cross[k] = m ? xy / m : 0;
    middles[k] = (lo + hi) / 2;
  }
  return { old, neu, cross, middles };
}

// soundtrack.py steady_crossfade_gains at one point of an equal-power crossfade (in = sin theta, out
// = cos theta): the scale that makes the sum's power, cross power 2 sin cos C included, that of two
// unrelated clips (cos^2 P_old + sin^2 P_new: the straight path from one level to the other).
function steadyScaleAt(theta, pOld, pNew, cross) {
  const c = Math.cos(theta), s = Math.sin(theta);
  const unrelated = c * c * pOld + s * s * pNew, summed = unrelated + 2 * s * c * cross;
  const scale = summed > 0 ? Math.sqrt(unrelated / summed) : 1;  // both silent: the gains stay
  return Math.min(STEADY_LIMIT, Math.max(1 / STEADY_LIMIT, scale));
}

// The whole-book mixer's law (m2m/soundtrack.py steady_crossfade_gains) for a crossfade of `seconds`
// from `a` (from `offsetA` s, round its end: a looping clip) into `b` (from `offsetB` s): the scale
// of the equal-power gains at each of fadeVoice's FADE_POINTS points (point i at i / (FADE_POINTS -
// 1) of the fade, theta = HALF_PI i / (FADE_POINTS - 1)), the quarter seconds' powers interpolated
// between their middles. null (equal power) where there is nothing to measure, or either is silent.
function steadyScale(a, offsetA, b, offsetB, seconds) {
  const rate = a.sampleRate, n = Math.floor(seconds * rate);
  if (!n || b.sampleRate !== rate || a.length === 0 || b.length === 0) return null;
  const count = Math.max(1, Math.round(n / (STEADY_SECONDS * rate)));
  const channels = Math.min(a.numberOfChannels, b.numberOfChannels);
  const step = Math.max(1, Math.ceil(n * channels / STEADY_SAMPLES));
  const p = stretchPowers(a, Math.floor(offsetA * rate), b, Math.floor(offsetB * rate), n, count, step);
  if (!p.old.some((x) => x > 0) || !p.neu.some((x) => x > 0)) return null;
  const scale = new Float32Array(FADE_POINTS);
  for (let i = 0; i < FADE_POINTS; i++) {
    const x = i / (FADE_POINTS - 1), at = x * seconds * rate;
    scale[i] = steadyScaleAt(HALF_PI * x, interpAt(p.middles, p.old, at), interpAt(p.middles, p.neu, at),
                             interpAt(p.middles, p.cross, at));
  }
  return scale;
}

// The steady law's scale (steadyScale) a plain crossfade of `plan` into `buffer` follows (fadeVoice):
// from the one voice sounding at full gain, where it is now in its looping clip, into `buffer` from
// `offset` s (where it enters); null (equal power) for a silence's or a stinger's move, a stinger, a
// voice mid-fade, or several sounding.
function soleVoiceSteadyScale(ctx, voices, buffer, plan, offset = 0) {
  if (!buffer || plan.delay || plan.in !== plan.out) return null;
  const now = ctx.currentTime, sounding = voices.filter((v) => v.target !== 0);
  if (sounding.length !== 1 || sounding[0].stinger || gainAt(sounding[0], now) < 0.98) return null;
  const old = sounding[0], clip = old.src.buffer;
  if (!clip || now < old.clipStart) return null;
  return steadyScale(clip, (now - old.clipStart) % clip.duration, buffer, offset, plan.in);
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

// What a fade's record says of its scale (JSON-small): {min, max} to 3 decimals, or null.
function scaleRange(scale) {
  if (!scale) return null;
  let lo = Infinity, hi = -Infinity;
  for (const x of scale) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  return { min: Number(lo.toFixed(3)), max: Number(hi.toFixed(3)) };
}

// `delay`: seconds to hold the gain before the fade starts (a silence before a scene's music).
// `scale`: the steady law's scale of the equal-power gains at each of the curve's points
// (steadyScale; null: plain equal power), the whole-book file's law (m2m/soundtrack.py
// steady_crossfade_gains): the sum held as loud, moment by moment, as two unrelated clips would be,
// so two alike pages (a scene's share key, tempo, chords) do not swell by up to 3 dB mid-turn, nor
// two opposed ones sink. Both voices of a crossfade are given the same scale.
// Never throws: a page turn's bookkeeping (which voice is wanted, the fade log) goes on whatever
// the browser's automation timeline refuses; the returned record says so in `error`.
function fadeVoice(ctx, v, to, seconds, delay = 0, scale = null) {
  const p = v.gain.gain, now = ctx.currentTime, at = now + FADE_EPS + Math.max(0, delay);
  const estimate = gainAt(v, now);
  // A voice the steady law turned up mid-crossfade may be above 1: fade on from there, not a step
  const g0 = Number.isFinite(estimate) ? Math.min(STEADY_LIMIT, Math.max(0, estimate)) : (to > 0 ? 0 : 1);
  // Equal power: in = sin(theta), out = cos(theta). Start theta where the gain is now and keep the
  // rate of the full fade, so a half-faded voice finishes in half the time.
  // Under the steady law both voices follow one theta from 0 (fadeVoice is given a scale only for a
  // voice at full gain and one entering from silence), the theta the scale was measured at: a head
  // start of the fading one's theta would unbalance the sum the law holds steady.
  const th0 = scale ? 0 : to > 0 ? Math.asin(Math.min(1, g0)) : Math.acos(Math.min(1, g0));
  const dur = Math.max(0.02, seconds * (HALF_PI - th0) / HALF_PI);
  const curve = new Float32Array(FADE_POINTS);
  for (let i = 0; i < FADE_POINTS; i++) {
    const th = th0 + (HALF_PI - th0) * (i / (FADE_POINTS - 1));
    curve[i] = (to > 0 ? Math.sin(th) : Math.cos(th)) * (scale ? scale[i] : 1);
  }
  curve[0] = g0; curve[FADE_POINTS - 1] = to;
  v.hold = g0; v.target = to; v.curveStart = at; v.curveDur = dur;
  const done = { from: g0, to, start: at, seconds: dur, scale: scaleRange(scale) };
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
