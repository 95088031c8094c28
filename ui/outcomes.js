// Sentences for what the server answered or sampled: an update's outcome, the
// summary of "Update all", an agent's memory and CPU. Pure (tested by node).

import { formatBytes } from './util.js';

/** `POST /agents/{id}/update`'s answer as {text, kind}: updated, up to date, rolled back. */
export function updateOutcome(name, reply) {
  if (reply && reply.updated) return { text: `${name} was updated to a newer image.`, kind: 'ok' };
  if (reply && reply.rolledBack) return { text: `${name} was rolled back to its previous image: ${reply.rolledBack}`, kind: 'error' };
  return { text: `${name} is up to date.`, kind: 'ok' };
}

/**
 * `POST /agents/update-all`'s results as one sentence; `nameOf(id)` gives a name.
 * {text, kind}: kind is 'error' when any agent failed or was rolled back.
 */
export function updateSummary(results, nameOf) {
  const updated = [];
  const current = [];
  const problems = [];
  for (const r of results || []) {
    const name = nameOf(r.id) || r.id;
    if (r.error) problems.push(`${name} failed: ${r.error}`);
    else if (r.rolledBack) problems.push(`${name} was rolled back: ${r.rolledBack}`);
    else if (r.updated) updated.push(name);
    else current.push(name);
  }
  if (!updated.length && !current.length && !problems.length) return { text: 'There is no agent to update.', kind: 'info' };
  const parts = [];
  if (updated.length) parts.push(`Updated: ${updated.join(', ')}.`);
  if (current.length) {
    parts.push(!updated.length && !problems.length
      ? (current.length === 1 ? `${current[0]} is up to date.` : 'All agents are up to date.')
      : `Up to date: ${current.join(', ')}.`);
  }
  for (const p of problems) parts.push(`${p.replace(/\.$/, '')}.`);
  return { text: parts.join(' '), kind: problems.length ? 'error' : 'ok' };
}

/** One `/agents/stats` entry as "Memory 120 MiB of 2.00 GiB · CPU 3%" and a fraction. */
export function statsText(sample) {
  if (!sample) return null;
  const bits = [];
  let fraction = null;
  if (sample.memoryBytes != null) {
    const limit = sample.memoryLimitBytes ? ` of ${formatBytes(sample.memoryLimitBytes)}` : '';
    bits.push(`Memory ${formatBytes(sample.memoryBytes)}${limit}`);
    if (sample.memoryLimitBytes) fraction = Math.max(0, Math.min(1, sample.memoryBytes / sample.memoryLimitBytes));
  }
  bits.push(sample.cpuPercent == null ? 'CPU …' : `CPU ${sample.cpuPercent < 10 ? sample.cpuPercent.toFixed(1) : Math.round(sample.cpuPercent)}%`);
  return { text: bits.join('  ·  '), fraction };
}
