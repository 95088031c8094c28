// The setup progress as figures: the phase title, the ETA from byte counter samples,
// and the line under the bar. Pure functions of their arguments (tested by node).

import { formatBytes, formatClock, formatEta } from './util.js';

/** What the machine setup is doing, from the step and the line Podman printed. */
export function phaseTitle(setup) {
  const step = setup ? setup.step : 'start';
  const text = setup ? setup.line || '' : '';
  if (step === 'start' || !setup) return 'Starting the machine';
  if (/^Extracting/i.test(text)) return 'Unpacking the machine image';
  if (/^(Copying|Looking up|Getting image|Writing|Downloading)/i.test(text)) return 'Downloading the machine image';
  return 'Creating the machine';
}

/** Adds a byte counter sample at time `t` (ms); returns the samples to keep (last 30 s). */
export function addSample(samples, setup, t) {
  if (setup.step !== 'init' || setup.doneBytes == null || !setup.totalBytes) return samples;
  const last = samples[samples.length - 1];
  let kept = samples;
  if (last && (last.total !== setup.totalBytes || setup.doneBytes < last.done)) kept = [];
  else if (last && last.done === setup.doneBytes) return samples;
  kept = [...kept, { t, done: setup.doneBytes, total: setup.totalBytes }];
  while (kept.length > 2 && kept[0].t < t - 30000) kept = kept.slice(1);
  return kept;
}

/** Seconds left at the rate the samples show, or null when they do not tell yet. */
export function etaSecs(samples, setup) {
  if (samples.length < 2) return null;
  const a = samples[0];
  const b = samples[samples.length - 1];
  const secs = (b.t - a.t) / 1000;
  if (secs < 0.5 || b.done <= a.done) return null;
  const rate = (b.done - a.done) / secs;
  return Math.max(0, (setup.totalBytes - setup.doneBytes) / rate);
}

/** The line under the bar: "50%  ·  1.00 GiB of 2.00 GiB  ·  about 45 s left". */
export function progressFigures(setup, eta, elapsedSecs) {
  const counted = setup && setup.step === 'init' && setup.percent != null && setup.totalBytes;
  if (!counted) return `${formatClock(elapsedSecs)} elapsed`;
  const pct = Math.max(0, Math.min(100, setup.percent));
  const bits = [`${Math.round(pct)}%`, `${formatBytes(setup.doneBytes)} of ${formatBytes(setup.totalBytes)}`];
  bits.push(eta != null ? `${formatEta(eta)} left` : `${formatClock(elapsedSecs)} elapsed`);
  return bits.join('  ·  ');
}
