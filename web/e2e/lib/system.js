// Starts the real system for a test: its own redis-server on a free loopback
// port (and, for the relay tests, its own coturn `turnserver`), and the real
// `matcher` and `signaller` binaries from target/debug,
// each on a free port, each waited for through /readyz. Everything started is
// stopped by `stop()`, and also when the test process exits.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN_DIR = process.env.E2E_BIN_DIR || path.join(REPO, 'target', 'debug');
/** Serve web/ from this folder instead of the copy embedded in the matcher. */
const WEB_DIR = process.env.E2E_WEB_DIR || '';

/**
 * Every browser of a test comes from 127.0.0.1, so the per-address limits
 * (on by default) are turned off explicitly; Rust tests cover them.
 */
const NO_ADDRESS_LIMITS = ['--ip-rate-limit', '0', '--max-sockets-per-ip', '0', '--max-connections-per-ip', '0'];

const READY_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 5000;
const LOG_LIMIT = 200_000;

const everyProcess = new Set();
process.on('exit', () => {
  for (const child of everyProcess) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** One child process with its output kept for the failure report. */
class Proc {
  constructor(name, cmd, args, env = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.log = '';
    this.exited = null;
    this.child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', NO_COLOR: '1', ...env },
    });
    everyProcess.add(this.child);
    const keep = (chunk) => {
      this.log += chunk.toString();
      if (this.log.length > LOG_LIMIT) this.log = this.log.slice(-LOG_LIMIT);
      if (process.env.E2E_VERBOSE) process.stderr.write(`[${this.name}] ${chunk}`);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = { code, signal };
        everyProcess.delete(this.child);
        resolve(this.exited);
      });
      this.child.on('error', (err) => {
        this.log += `\n[spawn error] ${err.message}\n`;
        this.exited = { code: -1, signal: null, error: err };
        everyProcess.delete(this.child);
        resolve(this.exited);
      });
    });
  }

  describeExit() {
    const e = this.exited;
    return e ? `${this.name} exited (code ${e.code}, signal ${e.signal})` : `${this.name} is running`;
  }

  /** SIGKILL, as a crash: no clean-up at all. */
  async kill() {
    if (this.exited) return;
    this.child.kill('SIGKILL');
    await this.exitPromise;
  }

  async stop() {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
    });
    const first = await Promise.race([this.exitPromise, timeout]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.log += `\n[e2e] no exit ${STOP_TIMEOUT_MS} ms after SIGTERM: killed\n`;
      this.child.kill('SIGKILL');
      await this.exitPromise;
    }
  }
}

/** Wait until `GET url` answers 200, or fail after READY_TIMEOUT_MS. */
async function waitReady(proc, url) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.describeExit()} before it was ready:\n${tail(proc.log)}`);
    try {
      const { status, body } = await httpGet(url, 1000);
      if (status === 200) return;
      last = `HTTP ${status} ${body}`;
    } catch (err) {
      last = err.code || err.message;
    }
    await sleep(100);
  }
  throw new Error(`${proc.name} not ready at ${url} within ${READY_TIMEOUT_MS} ms (last: ${last}):\n${tail(proc.log)}`);
}

/** GET without keep-alive (an idle pooled socket would hold the test process open). */
function httpGet(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body: body.trim() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Wait until redis answers PING, or fail. */
async function waitRedis(proc, port) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.describeExit()} before it was ready:\n${tail(proc.log)}`);
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let got = '';
      sock.setTimeout(1000, () => {
        sock.destroy();
        resolve(false);
      });
      sock.on('connect', () => sock.write('PING\r\n'));
      sock.on('data', (d) => {
        got += d;
        if (got.includes('\r\n')) {
          sock.destroy();
          resolve(got.startsWith('+PONG'));
        }
      });
      sock.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`redis-server not answering on port ${port} within ${READY_TIMEOUT_MS} ms:\n${tail(proc.log)}`);
}

/** Wait until something accepts TCP connections on 127.0.0.1:`port`, or fail. */
async function waitListening(proc, port) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.describeExit()} before it was ready:\n${tail(proc.log)}`);
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      sock.setTimeout(1000, () => {
        sock.destroy();
        resolve(false);
      });
      sock.on('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${proc.name} not listening on port ${port} within ${READY_TIMEOUT_MS} ms:\n${tail(proc.log)}`);
}

function tail(text, n = 40) {
  return text.split('\n').slice(-n).join('\n');
}

function binary(name) {
  const bin = path.join(BIN_DIR, name);
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: build it first with \`cargo build --bins\` (scripts/e2e does)`);
  }
  return bin;
}

/**
 * The processes of one test: a Redis, and any number of signallers and
 * matchers pointed at it.
 */
export class System {
  constructor() {
    this.procs = [];
    this.balancers = [];
    this.ticketSecret = randomBytes(32).toString('hex');
    this.redisUrl = null;
  }

  async startRedis() {
    const port = await freePort();
    const proc = new Proc(`redis:${port}`, 'redis-server', [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
    ]);
    this.procs.push(proc);
    await waitRedis(proc, port);
    this.redisUrl = `redis://127.0.0.1:${port}`;
    return this.redisUrl;
  }

  /**
   * A coturn `turnserver` on 127.0.0.1 with REST API credentials
   * (`use-auth-secret`) and its own relay port range; relays between
   * loopback addresses. Returns {port, url (turn:), stunUrl, secret}.
   */
  async startTurn({ secret = randomBytes(24).toString('hex') } = {}) {
    const port = await freePort();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rvc-e2e-turn-'));
    const min = 30000 + (port % 1000) * 20;
    const proc = new Proc(`turnserver:${port}`, 'turnserver', [
      '-n',
      '-v', // log each allocation: the relay scenario checks coturn carried the call
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      '--realm=e2e',
      '--allow-loopback-peers',
      '--no-cli',
      '--no-tls',
      '--no-dtls',
      `--min-port=${min}`,
      `--max-port=${min + 19}`,
      `--pidfile=${path.join(dir, 'turn.pid')}`,
      `--userdb=${path.join(dir, 'turndb')}`,
      '--log-file=stdout',
      '--simple-log',
    ]);
    this.procs.push(proc);
    await waitListening(proc, port);
    return { port, url: `turn:127.0.0.1:${port}`, stunUrl: `stun:127.0.0.1:${port}`, secret, proc };
  }

  /** A signaller node; returns {port, url (its ws URL), base (http)}. */
  async startSignaller(name = 'signaller') {
    const port = await freePort();
    const proc = new Proc(`${name}:${port}`, binary('signaller'), [
      '--listen', `127.0.0.1:${port}`,
      '--redis-url', this.redisUrl,
      '--ticket-secret', this.ticketSecret,
      ...NO_ADDRESS_LIMITS,
    ]);
    this.procs.push(proc);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(proc, `${base}/readyz`);
    return { port, base, url: `ws://127.0.0.1:${port}/ws`, proc };
  }

  /**
   * A matcher process.
   * @param {object} o
   * @param {'all'|'gateway'|'worker'} o.role
   * @param {string} [o.signallerUrl]  what `matched` tells clients
   * @param {number} [o.port]  a given port (e.g. to restart a gateway where it was)
   * @param {{url: string, secret: string, ttlSecs?: number}} [o.turn]  hand out this TURN server
   */
  async startMatcher({ role = 'all', signallerUrl, name = 'matcher', port: wanted, turn, host = '127.0.0.1', extraArgs = [] } = {}) {
    const port = wanted || (await freePort());
    const args = [
      '--role', role,
      '--listen', `${host}:${port}`,
      '--redis-url', this.redisUrl,
      '--ticket-secret', this.ticketSecret,
      ...NO_ADDRESS_LIMITS,
    ];
    if (signallerUrl) args.push('--signaller-url', signallerUrl);
    if (turn) {
      args.push('--turn-urls', turn.url, '--turn-secret', turn.secret);
      if (turn.ttlSecs) args.push('--turn-ttl-secs', String(turn.ttlSecs));
    }
    if (WEB_DIR) args.push('--web-dir', path.resolve(WEB_DIR));
    args.push(...extraArgs);
    const proc = new Proc(`${name}(${role}):${port}`, binary('matcher'), args);
    this.procs.push(proc);
    const base = `http://127.0.0.1:${port}`;
    await waitReady(proc, `${base}/readyz`);
    return { port, base, url: `${base}/`, proc };
  }

  /**
   * A TCP load balancer in front of signaller nodes (as nginx is in the
   * deployment): each connection goes to the first of `ports` that accepts
   * it, so clients reach a live node at the same address when one dies.
   * Returns {port, url (ws URL)}.
   */
  async startBalancer(ports) {
    const port = await freePort();
    const pipes = new Set();
    const server = net.createServer((client) => {
      client.pause();
      const tryBackend = (i) => {
        if (i >= ports.length) {
          client.destroy();
          return;
        }
        const backend = net.connect(ports[i], '127.0.0.1');
        backend.once('error', () => tryBackend(i + 1));
        backend.once('connect', () => {
          backend.removeAllListeners('error');
          const end = () => {
            client.destroy();
            backend.destroy();
            pipes.delete(end);
          };
          pipes.add(end);
          backend.on('error', end).on('close', end);
          client.on('error', end).on('close', end);
          client.pipe(backend);
          backend.pipe(client);
          client.resume();
        });
      };
      tryBackend(0);
    });
    await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.balancers.push({ server, pipes });
    return { port, url: `ws://127.0.0.1:${port}/ws` };
  }

  /** Everything that happened on the servers, for a failure report. */
  logs() {
    return this.procs
      .map((p) => `===== ${p.name}: ${p.cmd} ${p.args.join(' ')}\n${p.exited ? p.describeExit() + '\n' : ''}${p.log}`)
      .join('\n');
  }

  async saveLogs(file) {
    await writeFile(file, this.logs());
  }

  /** Stop everything, newest first (services before their Redis). */
  async stop() {
    for (const { server, pipes } of this.balancers) {
      for (const end of pipes) end();
      server.close();
    }
    for (const p of this.procs.slice().reverse()) await p.stop();
  }
}
