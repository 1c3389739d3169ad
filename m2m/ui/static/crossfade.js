// Equal-power fades on Web Audio GainNodes, shared by the reader (reader.js) and the listening
// study (study.js): both are loaded after this file in the same js_on_load scope.
// A voice is {gain: GainNode, hold, target, curve, curveStart, curveDur}.

const FADE_EPS = 0.003;       // s: curves start just after the hold point (no overlapping events)
const FADE_POINTS = 96;
const HALF_PI = Math.PI / 2;

function gainAt(v, t) {
  // The voice's gain at ctx time t, from the curve we scheduled (the same linear interpolation the
  // spec uses for setValueCurveAtTime), so a new fade can start exactly where the old one is.
  if (!v.curve || t <= v.curveStart) return v.hold;
  const x = (t - v.curveStart) / v.curveDur;
  if (x >= 1) return v.curve[v.curve.length - 1];
  const f = x * (v.curve.length - 1), i = Math.floor(f);
  return v.curve[i] + (v.curve[i + 1] - v.curve[i]) * (f - i);
}

// `delay`: seconds to hold the gain before the fade starts (a silence before a scene's music).
function fadeVoice(ctx, v, to, seconds, delay = 0) {
  const p = v.gain.gain, now = ctx.currentTime, at = now + FADE_EPS + Math.max(0, delay);
  const g0 = Math.min(1, Math.max(0, gainAt(v, now)));
  // Hold the gain where it is. cancelAndHoldAtTime keeps a running curve's current value; where it
  // is missing, cancelScheduledValues plus setValueAtTime does the same from our own estimate.
  if (p.cancelAndHoldAtTime) p.cancelAndHoldAtTime(now); else p.cancelScheduledValues(now);
  p.setValueAtTime(g0, now);
  // Equal power: in = sin(theta), out = cos(theta). Start theta where the gain is now and keep the
  // rate of the full fade, so a half-faded voice finishes in half the time.
  const th0 = to > 0 ? Math.asin(g0) : Math.acos(g0);
  const dur = Math.max(0.02, seconds * (HALF_PI - th0) / HALF_PI);
  const curve = new Float32Array(FADE_POINTS);
  for (let i = 0; i < FADE_POINTS; i++) {
    const th = th0 + (HALF_PI - th0) * (i / (FADE_POINTS - 1));
    curve[i] = to > 0 ? Math.sin(th) : Math.cos(th);
  }
  curve[0] = g0; curve[FADE_POINTS - 1] = to;
  v.hold = g0; v.target = to;
  try {
    p.setValueCurveAtTime(curve, at, dur);
    v.curve = curve;
  } catch (err) {
    p.setValueAtTime(g0, at);
    p.linearRampToValueAtTime(to, at + dur);
    v.curve = Float32Array.of(g0, to);
  }
  v.curveStart = at; v.curveDur = dur;
  return { from: g0, to, start: at, seconds: dur };
}

