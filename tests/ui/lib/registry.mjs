// A container registry of the window tests' own, and an engine that may pull from
// it: the pull side of the distribution API over plain HTTP on loopback, serving one
// image from an OCI layout folder (`podman save --format oci-dir`) under any name.
// Blobs go at a bounded rate and the config blob is held back a while, so the
// window can be read with every layer done. No registry is reachable in CI.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { sleep } from './harness.mjs';

/** Serves the image of the layout at `layout`; `close()` ends it. */
export async function serveRegistry(layout, { bytesPerSec, holdConfigMs }) {
  const blobFile = (digest) => (/^sha256:[0-9a-f]{64}$/.test(digest)
    ? path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length))
    : null);
  const entry = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'))).manifests[0];
  const config = JSON.parse(fs.readFileSync(blobFile(entry.digest))).config.digest;
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://registry');
    if (pathname === '/v2/' || pathname === '/v2') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0' });
      res.end('{}');
      return;
    }
    const asked = pathname.match(/^\/v2\/.+\/(manifests|blobs)\/([^/]+)$/);
    const manifest = asked?.[1] === 'manifests';
    const digest = manifest && !asked[2].startsWith('sha256:') ? entry.digest : asked?.[2];
    const file = digest && blobFile(digest);
    if (!file || !fs.existsSync(file)) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}');
      return;
    }
    const body = fs.readFileSync(file);
    res.writeHead(200, {
      'Content-Type': manifest ? entry.mediaType : 'application/octet-stream',
      'Content-Length': body.length,
      'Docker-Content-Digest': digest,
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (digest === config) await sleep(holdConfigMs);
    const chunk = Math.max(1, Math.floor(bytesPerSec / 10));
    for (let at = 0; at < body.length; at += chunk) {
      res.write(body.subarray(at, at + chunk));
      await sleep(100);
    }
    res.end();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${server.address().port}`, close: () => server.close() };
}

/**
 * A `podman system service` of the test's own on a socket in `dir`, whose
 * registries.conf lets it pull from `host` over plain HTTP: give its `socket` to
 * the server as CLAWDOCK_ENGINE_SOCKET. `stop()` ends it.
 */
export async function engineFor(dir, host) {
  const conf = path.join(dir, 'registries.conf');
  fs.writeFileSync(conf, `[[registry]]\nlocation = "${host}"\ninsecure = true\n`);
  const socket = path.join(dir, 'engine.sock');
  const service = spawn('podman', ['system', 'service', '--time=0', `unix://${socket}`], {
    env: { ...process.env, CONTAINERS_REGISTRIES_CONF: conf },
    stdio: 'ignore',
  });
  const began = Date.now();
  while (!(await listening(socket))) {
    if (Date.now() - began > 20000) throw new Error('the engine service never listened');
    await sleep(50);
  }
  return { socket, stop: () => service.kill() };
}

function listening(socket) {
  return new Promise((resolve) => {
    const probe = net.connect(socket, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
}
