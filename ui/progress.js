// Progress as figures: the setup's phase title and the line under a bar, for the
// setup and for an agent's image pull. The server counts the bytes and the ETA; these
// only say them. Pure functions of their arguments (tested by node).

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

/**
 * Bytes as figures, "50%  ·  1.00 GiB of 2.00 GiB  ·  about 45 s left"; without an
 * ETA the last part is `orElse` (or left out).
 */
export function byteFigures({ done, total, etaSecs }, orElse = null) {
  const pct = Math.max(0, Math.min(100, (done / total) * 100));
  const bits = [`${Math.round(pct)}%`, `${formatBytes(done)} of ${formatBytes(total)}`];
  if (etaSecs != null) bits.push(`${formatEta(etaSecs)} left`);
  else if (orElse) bits.push(orElse);
  return bits.join('  ·  ');
}

/** The line under the setup's bar: its bytes and ETA, or the time elapsed. */
export function progressFigures(setup, elapsedSecs) {
  const elapsed = `${formatClock(elapsedSecs)} elapsed`;
  const counted = setup && setup.step === 'init' && setup.doneBytes != null && setup.totalBytes;
  if (!counted) return elapsed;
  return byteFigures({ done: setup.doneBytes, total: setup.totalBytes, etaSecs: setup.etaSecs }, elapsed);
}
